"""Remote secrets in the format of `istioctl create-remote-secret`."""

from __future__ import annotations

import itertools

import pytest
import yaml

from mesh.plan.remote_secrets import remote_kubeconfig, remote_secret_manifest, remote_secret_pairs


@pytest.mark.parametrize("n", [2, 3, 5])
def test_every_cluster_holds_a_secret_for_every_other(n):
    clusters = [f"c{i}" for i in range(n)]
    pairs = remote_secret_pairs(clusters)
    assert len(pairs) == n * (n - 1)
    assert set(pairs) == set(itertools.permutations(clusters, 2))


def test_kubeconfig_names_everything_after_the_cluster():
    text = remote_kubeconfig("cluster2", "https://api.west.example.com:6443", "Q0EtREFUQQ==", "tok.en")
    document = yaml.safe_load(text)
    assert document == {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "cluster2",
                "cluster": {
                    "server": "https://api.west.example.com:6443",
                    "certificate-authority-data": "Q0EtREFUQQ==",
                },
            }
        ],
        "users": [{"name": "cluster2", "user": {"token": "tok.en"}}],
        "contexts": [{"name": "cluster2", "context": {"cluster": "cluster2", "user": "cluster2"}}],
        "current-context": "cluster2",
        "preferences": {},
    }


def test_secret_carries_istios_label_and_annotation():
    manifest = remote_secret_manifest("cluster1")
    assert manifest["metadata"] == {
        "name": "istio-remote-secret-cluster1",
        "namespace": "istio-system",
        "labels": {"istio/multiCluster": "true"},
        "annotations": {"networking.istio.io/cluster": "cluster1"},
    }
