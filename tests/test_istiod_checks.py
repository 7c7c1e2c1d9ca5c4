"""`mesh verify`'s reading of what istiod says, on answers in the shape the lab's real istiod
(Istio 1.31-dev) gives: `/debug/clusterz`, `/debug/networkz`, `/debug/endpointShardz`."""

from __future__ import annotations

import pytest

from mesh import config, istiod_checks as ic

CLUSTERZ = [
    {"id": "cluster1", "secretName": "", "syncStatus": "synced"},
    {"id": "cluster2", "secretName": "istio-system/istio-remote-secret-cluster2", "syncStatus": "synced"},
]


@pytest.fixture
def mesh(east_west) -> config.MeshConfig:
    return config.parse(east_west)


def test_a_synced_peer_passes_naming_the_secret(mesh):
    east, west = mesh.clusters
    status, detail = ic.peer_result(east, west, CLUSTERZ, None)
    assert status == "pass"
    assert detail == "west (cluster2) synced, from secret istio-system/istio-remote-secret-cluster2"


def test_a_peer_istiod_does_not_have_names_the_missing_secret(mesh):
    east, west = mesh.clusters
    status, detail = ic.peer_result(east, west, CLUSTERZ[:1], None)
    assert status == "fail"
    assert detail == "istiod has no remote cluster cluster2: istiod has not (yet) read secret istio-remote-secret-cluster2"


def test_a_peer_still_syncing_carries_the_remote_secret_checks_finding(mesh):
    east, west = mesh.clusters
    syncing = [dict(CLUSTERZ[1], syncStatus="timeout")]
    status, detail = ic.peer_result(east, west, syncing, "west rejects its token (revoked or rotated away)")
    assert status == "fail"
    assert "is timeout" in detail and "west rejects its token" in detail


def shards(cluster: str, count: int) -> dict:
    endpoints = [{"Addresses": [f"10.244.2.{i}"], "Network": "network2"} for i in range(count)]
    return {ic.HELLOWORLD_HOST: {"sample": {"Shards": {f"Kubernetes/{cluster}": endpoints}}}}


NETWORKZ = [{"Network": "network2", "Addr": "198.51.100.20", "Port": 15443, "Cluster": "cluster2"}]


def test_endpoints_of_the_peer_behind_its_gateway_pass(mesh):
    east, west = mesh.clusters
    status, detail = ic.endpoint_result(east, west, NETWORKZ, shards("cluster2", 2), "198.51.100.20", True, True)
    assert (status, detail) == ("pass", "2 helloworld endpoint(s) of west, reached through 198.51.100.20:15443")


def test_a_gateway_istiod_does_not_know_is_named(mesh):
    east, west = mesh.clusters
    status, detail = ic.endpoint_result(east, west, [], shards("cluster2", 1), "198.51.100.20", True, True)
    assert status == "fail" and "istiod knows no gateway for network network2" in detail
    status, detail = ic.endpoint_result(east, west, NETWORKZ, shards("cluster2", 1), "198.51.100.99", True, True)
    assert "istiod's gateway for network2 is 198.51.100.20:15443, not 198.51.100.99:15443" in detail


def test_synced_but_no_endpoints_is_told_apart_from_a_peer_with_no_pods(mesh):
    east, west = mesh.clusters
    status, detail = ic.endpoint_result(east, west, NETWORKZ, shards("cluster1", 1), "198.51.100.20", True, True)
    assert status == "fail" and detail.startswith("synced but no endpoints: west has ready helloworld endpoints")
    status, detail = ic.endpoint_result(east, west, NETWORKZ, {}, "198.51.100.20", False, False)
    assert detail == f"west itself has no helloworld endpoint (no pod runs there: {ic.NO_NODE})"
    status, detail = ic.endpoint_result(east, west, NETWORKZ, {}, "198.51.100.20", False, True)
    assert detail == "west itself has no helloworld endpoint (it has no ready helloworld pod)"
