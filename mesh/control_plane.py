"""A cluster's Istio control plane: `istio-system` with its network label, the `cacerts` secret,
`IstioCNI` and the `Istio` resource of the Sail operator (`sailoperator.io/v1`).

Order matters and is encoded as dependencies: istiod decides once, at start, whether a plugged-in
CA exists, so `cacerts` must be in place before the `Istio` resource is created.
"""

from __future__ import annotations

from typing import Any, Optional

import pulumi

from . import kube
from .config import ClusterConfig, MeshConfig

ISTIO_NAMESPACE = "istio-system"
CNI_NAMESPACE = "istio-cni"
NETWORK_LABEL = "topology.istio.io/network"
SAIL_API_VERSION = "sailoperator.io/v1"


def namespace_manifest(name: str, labels: Optional[dict[str, str]] = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def istio_system_manifest(network: str) -> dict[str, Any]:
    return namespace_manifest(ISTIO_NAMESPACE, {NETWORK_LABEL: network})


def cacerts_manifest() -> dict[str, Any]:
    """The `cacerts` secret without its data, which comes from the CA's outputs."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "cacerts", "namespace": ISTIO_NAMESPACE},
        "type": "Opaque",
    }


# istiod's environment, which renewal and root rotation depend on:
PILOT_ENV = {
    # istiod re-reads `cacerts` when it changes, so a renewed intermediate takes effect without a
    # restart (the default since Istio 1.18; explicit here because renewal depends on it).
    "AUTO_RELOAD_PLUGIN_CERTS": "true",
    # Without it istiod refuses any change of `root-cert.pem` ("Multi root is disabled, updating
    # new ROOT-CA not supported", pilot/pkg/bootstrap/istio_ca.go) and keeps the old bundle until
    # restarted, so a root rotation's trust and retire steps never reach it. With it, istiod takes
    # a bundle that adds roots to the current one or drops some (exactly those two steps) and
    # pushes it to workloads. Found by the lab's real istiod (tests/integration/test_lab_root_rotation.py).
    "ISTIO_MULTIROOT_MESH": "true",
}


def _ready_annotations() -> dict[str, str]:
    return {kube.WAIT_FOR: "condition=Ready"}


def istio_manifest(mesh: MeshConfig, cluster: ClusterConfig) -> dict[str, Any]:
    return {
        "apiVersion": SAIL_API_VERSION,
        "kind": "Istio",
        "metadata": {"name": "default", "annotations": _ready_annotations()},
        "spec": {
            "version": mesh.istio_version,
            "namespace": ISTIO_NAMESPACE,
            "updateStrategy": {"type": mesh.update_strategy},
            "values": {
                "global": {
                    "meshID": mesh.mesh_id,
                    "multiCluster": {"clusterName": cluster.cluster_name},
                    "network": cluster.network,
                },
                "pilot": {"env": PILOT_ENV},
            },
        },
    }


def istio_cni_manifest(mesh: MeshConfig) -> dict[str, Any]:
    return {
        "apiVersion": SAIL_API_VERSION,
        "kind": "IstioCNI",
        # The CRD's CEL rule: the only IstioCNI is named "default".
        "metadata": {"name": "default", "annotations": _ready_annotations()},
        "spec": {"version": mesh.istio_version, "namespace": CNI_NAMESPACE},
    }


class ControlPlane(pulumi.ComponentResource):
    """Namespace, plugged-in CA, CNI and Istio for one cluster; `up` waits for Ready."""

    namespace: pulumi.CustomResource
    istio: pulumi.CustomResource

    def __init__(
        self,
        mesh: MeshConfig,
        cluster: ClusterConfig,
        cacerts: pulumi.Output[dict],
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        super().__init__("istio-mesh:mesh:ControlPlane", cluster.name, None, opts)
        name = cluster.name
        child = pulumi.ResourceOptions(parent=self)
        ready_timeouts = pulumi.CustomTimeouts(
            create=f"{mesh.ready_timeout_seconds}s", update=f"{mesh.ready_timeout_seconds}s"
        )
        self.namespace = kube.create(name, istio_system_manifest(cluster.network), child)
        self.cacerts = kube.create(
            name,
            cacerts_manifest(),
            pulumi.ResourceOptions(parent=self, depends_on=[self.namespace]),
            overrides={"stringData": cacerts},
        )
        depends: list[pulumi.Resource] = [self.namespace, self.cacerts]
        self.cni: Optional[pulumi.CustomResource] = None
        if mesh.manage_istio_cni:
            cni_namespace = kube.create(name, namespace_manifest(CNI_NAMESPACE), child)
            self.cni = kube.create(
                name,
                istio_cni_manifest(mesh),
                pulumi.ResourceOptions(parent=self, depends_on=[cni_namespace], custom_timeouts=ready_timeouts),
            )
            # On OpenShift the Istio resource never turns healthy without CNI.
            depends.append(self.cni)
        self.istio = kube.create(
            name,
            istio_manifest(mesh, cluster),
            pulumi.ResourceOptions(parent=self, depends_on=depends, custom_timeouts=ready_timeouts),
        )
        self.register_outputs({})
