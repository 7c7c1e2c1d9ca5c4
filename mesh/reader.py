"""The identity other clusters' istiod use to read this cluster: a service account, its rights,
and a long-lived token secret that `up` waits on until the token controller fills it.

Names are our own (`istio-mesh-reader*`), never `istio-reader-service-account` or the
`istio-reader-clusterrole-*` objects: from OSSM 3.1 the operator's Helm release owns those, and
objects it wants to own but finds foreign make it fail (sail-operator#536).
"""

from __future__ import annotations

import base64
from typing import Any, Optional

import pulumi
import pulumi_random as random

from . import kube
from .config import ClusterConfig, MeshConfig
from .control_plane import ISTIO_NAMESPACE

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
                kube.WAIT_FOR: "jsonpath={.data.token}",
            },
        },
        "type": "kubernetes.io/service-account-token",
    }


class RemoteReader(pulumi.ComponentResource):
    """Reader identity on one cluster; `token` and `ca_data` feed the other clusters' secrets."""

    token: pulumi.Output[str]
    ca_data: pulumi.Output[str]
    token_secret_name: pulumi.Output[str]

    def __init__(
        self,
        mesh: MeshConfig,
        cluster: ClusterConfig,
        namespace: pulumi.Resource,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        super().__init__("istio-mesh:mesh:RemoteReader", cluster.name, None, opts)
        objects = [
            kube.create(cluster.name, manifest, pulumi.ResourceOptions(parent=self, depends_on=[namespace]))
            for manifest in reader_manifests(mesh.reader_access)
        ]
        # Changing mesh:readerTokenRotation gives a new suffix, so a new secret name: Pulumi
        # creates the new token, updates every remote secret that uses it, and only then
        # deletes the old one (deleting a token secret revokes its token at once).
        suffix = random.RandomId(
            f"{cluster.name}-reader-token-suffix",
            byte_length=3,
            keepers={"rotation": mesh.reader_token_rotation},
            opts=pulumi.ResourceOptions(parent=self),
        )
        timeouts = pulumi.CustomTimeouts(create=f"{mesh.ready_timeout_seconds}s")
        manifest = token_secret_manifest()
        secret = kube.create(
            cluster.name,
            manifest,
            pulumi.ResourceOptions(parent=self, depends_on=objects, custom_timeouts=timeouts),
            overrides={
                "metadata": suffix.hex.apply(
                    lambda hex_: token_secret_manifest(hex_)["metadata"]
                )
            },
        )
        data = pulumi.Output.secret(secret.data)
        self.token = data.apply(lambda d: base64.b64decode(d["token"]).decode())
        self.ca_data = data.apply(lambda d: d["ca.crt"])
        self.token_secret_name = secret.metadata.apply(lambda m: m.name)
        self.register_outputs({"token_secret_name": self.token_secret_name})
