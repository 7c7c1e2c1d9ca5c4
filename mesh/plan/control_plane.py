"""The objects of a cluster's Istio control plane: `istio-system` with its network label, the
`cacerts` secret, `IstioCNI` and the `Istio` resource of the Sail operator (`sailoperator.io/v1`).
"""

from __future__ import annotations

from typing import Any, Optional

from ..config import ClusterConfig, MeshConfig
from .names import CNI_NAMESPACE, ISTIO_NAMESPACE, NETWORK_LABEL, PATCH_FORCE, SAIL_API_VERSION, WAIT_FOR


def namespace_manifest(name: str, labels: Optional[dict[str, str]] = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def istio_system_manifest(network: str) -> dict[str, Any]:
    return namespace_manifest(ISTIO_NAMESPACE, {NETWORK_LABEL: network})


def cacerts_manifest(form: str = "istio", secret_type: str = "Opaque") -> dict[str, Any]:
    """The program's `cacerts` secret without its data, which comes from the CA's outputs: Istio's
    four files (`istio`), or the `tls.*` keys (`tls`: a Secret taken back from cert-manager;
    `mesh/plan/cacerts_handover.py`), in a Secret of the type it was made with (immutable). The
    `tls` form's keys were cert-manager's: the program forces its own values over them."""
    metadata: dict[str, Any] = {"name": "cacerts", "namespace": ISTIO_NAMESPACE}
    if form == "tls":
        metadata["annotations"] = {PATCH_FORCE: "true"}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": secret_type,
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
    return {WAIT_FOR: "condition=Ready"}


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
