"""`mesh verify`'s reading of what istiod says, on answers captured from the lab's real istiod
(Istio 1.31-dev, tests/data/istiod-debug-east.json): `/debug/clusterz`, `/debug/networkz`,
`/debug/endpointShardz`, and variations of them."""

from __future__ import annotations

import copy
import json
import pathlib

import pytest

from mesh import config
from mesh.verify import istiod_answers as ic

REAL = json.loads((pathlib.Path(__file__).parent / "data" / "istiod-debug-east.json").read_text())
CLUSTERZ = REAL["clusterz"]
NETWORKZ = REAL["networkz"]
SHARDZ = REAL["endpointShardz"]
WEST_GATEWAY = "127.0.0.3"


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
    status, detail = ic.peer_result(east, west, [c for c in CLUSTERZ if c["id"] != "cluster2"], None)
    assert status == "fail"
    assert (
        detail == "istiod has no remote cluster cluster2: istiod has not (yet) read secret istio-remote-secret-cluster2"
    )


def test_a_peer_still_syncing_carries_the_remote_secret_checks_finding(mesh):
    east, west = mesh.clusters
    syncing = [dict(c, syncStatus="timeout") for c in CLUSTERZ if c["id"] == "cluster2"]
    status, detail = ic.peer_result(east, west, syncing, "west rejects its token (revoked or rotated away)")
    assert status == "fail"
    assert "is timeout" in detail and "west rejects its token" in detail


def shards(cluster: str) -> dict:
    """The real answer with its one endpoint moved to `cluster`'s shard."""
    moved = copy.deepcopy(SHARDZ)
    service = moved[ic.HELLOWORLD_HOST]["sample"]
    service["Shards"] = {f"Kubernetes/{cluster}": service["Shards"]["Kubernetes/cluster2"]}
    return moved


def test_the_real_answers_are_read():
    assert ic.remote_clusters(CLUSTERZ)["cluster2"]["syncStatus"] == "synced"
    assert ic.network_gateways(NETWORKZ)["network2"] == [(WEST_GATEWAY, 15443)]
    assert [e["Addresses"] for e in ic.shard_endpoints(SHARDZ, ic.HELLOWORLD_HOST, "sample")["cluster2"]] == [
        ["10.244.2.10"]
    ]


def test_endpoints_of_the_peer_behind_its_gateway_pass(mesh):
    east, west = mesh.clusters
    status, detail = ic.endpoint_result(east, west, NETWORKZ, SHARDZ, WEST_GATEWAY, True, True)
    assert (status, detail) == ("pass", f"1 helloworld endpoint(s) of west, reached through {WEST_GATEWAY}:15443")


def test_a_gateway_istiod_does_not_know_is_named(mesh):
    east, west = mesh.clusters
    status, detail = ic.endpoint_result(east, west, NETWORKZ[:1], SHARDZ, WEST_GATEWAY, True, True)
    assert status == "fail" and "istiod knows no gateway for network network2" in detail
    status, detail = ic.endpoint_result(east, west, NETWORKZ, SHARDZ, "198.51.100.99", True, True)
    assert f"istiod's gateway for network2 is {WEST_GATEWAY}:15443, not 198.51.100.99:15443" in detail


def test_synced_but_no_endpoints_is_told_apart_from_a_peer_with_no_pods(mesh):
    east, west = mesh.clusters
    status, detail = ic.endpoint_result(east, west, NETWORKZ, shards("cluster1"), WEST_GATEWAY, True, True)
    assert status == "fail" and detail.startswith("synced but no endpoints: west has ready helloworld endpoints")
    status, detail = ic.endpoint_result(east, west, NETWORKZ, {}, WEST_GATEWAY, False, False)
    assert detail == f"west itself has no helloworld endpoint (no pod runs there: {ic.NO_NODE})"
    status, detail = ic.endpoint_result(east, west, NETWORKZ, {}, WEST_GATEWAY, False, True)
    assert detail == "west itself has no helloworld endpoint (it has no ready helloworld pod)"


def test_no_endpoints_from_a_peer_istiod_does_not_read_points_at_the_peers_check(mesh):
    east, west = mesh.clusters
    without_west = [c for c in CLUSTERZ if c["id"] != "cluster2"]
    status, detail = ic.endpoint_result(east, west, NETWORKZ, {}, WEST_GATEWAY, True, True, without_west)
    assert (status, detail) == ("fail", "istiod does not read west (see istiod peers), so it has none of its endpoints")
    status, detail = ic.endpoint_result(east, west, NETWORKZ, shards("cluster1"), WEST_GATEWAY, True, True, CLUSTERZ)
    assert detail.startswith("synced but no endpoints")
