"""A three-cluster mesh: six remote secrets, each opening the cluster it names."""

from __future__ import annotations

import kubernetes
import pytest

from .conftest import deploy, remote_client, secret_text, synced_peers, wait_for

CLUSTERS = ["east", "west", "south"]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    yield from deploy("three", CLUSTERS, tmp_path_factory)


def test_six_remote_secrets_each_open_the_right_cluster(mesh):
    opened = set()
    for holder in CLUSTERS:
        secrets = (
            mesh.core(holder).list_namespaced_secret("istio-system", label_selector="istio/multiCluster=true").items
        )
        assert len(secrets) == 2
        for secret in secrets:
            cluster_name = secret.metadata.annotations["networking.istio.io/cluster"]
            source = next(c for c in mesh.config["clusters"] if c["clusterName"] == cluster_name)
            assert source["name"] != holder
            core = kubernetes.client.CoreV1Api(remote_client(secret_text(secret, cluster_name)))
            labels = core.read_namespace("istio-system").metadata.labels
            assert labels["topology.istio.io/network"] == source["network"]
            opened.add((holder, source["name"]))
    assert len(opened) == 6


def test_every_istiod_has_both_peers_synced(mesh):
    names = {c["name"]: c["clusterName"] for c in mesh.config["clusters"]}
    for holder in CLUSTERS:
        expected = {names[peer] for peer in CLUSTERS if peer != holder}

        def all_synced() -> dict | None:
            peers = synced_peers(mesh, holder)
            return peers if all(peers.get(c) == "synced" for c in expected) else None

        peers = wait_for(f"{holder}'s istiod to sync {sorted(expected)}", all_synced)
        # Its own cluster and the two peers, nothing else.
        assert set(peers) == expected | {names[holder]}, peers
