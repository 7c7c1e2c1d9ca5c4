"""The objects of the identity other clusters' istiod use to read this cluster: a service
account, its rights, and a long-lived token secret that `up` waits on until the token
controller fills it.

Names are our own (`istio-mesh-reader*`), never `istio-reader-service-account` or the
`istio-reader-clusterrole-*` objects: from OSSM 3.1 the operator's Helm release owns those, and
objects it wants to own but finds foreign make it fail (sail-operator#536).
"""

from __future__ import annotations

from typing import Any

from .names import ISTIO_NAMESPACE, WAIT_FOR

READER = "istio-mesh-reader"
TOKEN_SECRET = f"{READER}-token"
# OpenShift's aggregated read-only role, which the article binds; on request only.
OPENSHIFT_CLUSTER_READER = "cluster-reader"

_READ = ["get", "list", "watch"]


def reader_rules() -> list[dict[str, Any]]:
    """Least privilege for a remote istiod: Istio's own reader rules (istio-reader-clusterrole)."""
    return [
        {
            "apiGroups": [
                "config.istio.io",
                "security.istio.io",
                "networking.istio.io",
                "authentication.istio.io",
                "rbac.istio.io",
                "telemetry.istio.io",
                "extensions.istio.io",
            ],
            "resources": ["*"],
            "verbs": list(_READ),
        },
        {
            "apiGroups": [""],
            "resources": [
                "endpoints",
                "pods",
                "services",
                "nodes",
                "replicationcontrollers",
                "namespaces",
                "secrets",
                "configmaps",
            ],
            "verbs": list(_READ),
        },
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": list(_READ)},
        {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": list(_READ)},
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": list(_READ)},
        {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["gateways"], "verbs": list(_READ)},
        {
            "apiGroups": ["multicluster.x-k8s.io"],
            "resources": ["serviceexports", "serviceimports"],
            "verbs": list(_READ),
        },
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
        {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
    ]


def reader_manifests(reader_access: str) -> list[dict[str, Any]]:
    """The service account and its cluster-wide read rights."""
    role_name = READER if reader_access == "istio-reader" else OPENSHIFT_CLUSTER_READER
    manifests: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": READER, "namespace": ISTIO_NAMESPACE}}
    ]
    if reader_access == "istio-reader":
        manifests.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": READER},
                "rules": reader_rules(),
            }
        )
    manifests.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": READER},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
            "subjects": [{"kind": "ServiceAccount", "name": READER, "namespace": ISTIO_NAMESPACE}],
        }
    )
    return manifests


def token_secret_manifest(suffix: str = "") -> dict[str, Any]:
    """A service-account token secret; kube-controller-manager fills `token` and `ca.crt`."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": TOKEN_SECRET + (f"-{suffix}" if suffix else ""),
            "namespace": ISTIO_NAMESPACE,
            "annotations": {
                "kubernetes.io/service-account.name": READER,
                WAIT_FOR: "jsonpath={.data.token}",
            },
        },
        "type": "kubernetes.io/service-account-token",
    }
