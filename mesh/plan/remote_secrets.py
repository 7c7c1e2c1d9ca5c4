"""Remote secrets: on every cluster, one secret per OTHER cluster that lets istiod read it.

The format is exactly what `istioctl create-remote-secret --name=<c>` emits
(istioctl/pkg/multicluster/remote_secret.go): secret `istio-remote-secret-<c>` in
`istio-system`, label `istio/multiCluster: "true"`, annotation `networking.istio.io/cluster: <c>`,
and one key `<c>` holding a kubeconfig whose cluster, user and context are all named `<c>`.
`<c>` is the source cluster's Istio clusterName.
"""

from __future__ import annotations

from typing import Any, Sequence, TypeVar

import yaml

from .names import ISTIO_NAMESPACE

# libyaml's emitter, the same output as the pure-Python one at a tenth of the cost: a mesh of
# N clusters writes N(N-1) of these kubeconfigs on every run (992 for 32 clusters).
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

MULTICLUSTER_LABEL = "istio/multiCluster"
CLUSTER_ANNOTATION = "networking.istio.io/cluster"

T = TypeVar("T")


def remote_secret_pairs(clusters: Sequence[T]) -> list[tuple[T, T]]:
    """(source, holder) for every ordered pair: `holder` gets a secret to read `source`."""
    return [(source, holder) for holder in clusters for source in clusters if source is not holder]


def remote_secret_name(cluster_name: str) -> str:
    return f"istio-remote-secret-{cluster_name}"


def remote_kubeconfig(cluster_name: str, server: str, ca_data: str, token: str) -> str:
    """A kubeconfig with one cluster, one token user and one current context, all `cluster_name`."""
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": cluster_name, "user": {"token": token}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
        "current-context": cluster_name,
        "preferences": {},
    }
    return yaml.dump(document, Dumper=_DUMPER, sort_keys=False)


def remote_secret_manifest(cluster_name: str) -> dict[str, Any]:
    """The secret without its data, which holds a token and so comes as a secret Output."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": remote_secret_name(cluster_name),
            "namespace": ISTIO_NAMESPACE,
            "labels": {MULTICLUSTER_LABEL: "true"},
            "annotations": {CLUSTER_ANNOTATION: cluster_name},
        },
        "type": "Opaque",
    }
