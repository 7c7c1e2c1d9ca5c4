"""The objects of a cluster's Istio control plane: `istio-system` with its network label, the
`cacerts` secret, `IstioCNI` and the `Istio` resource of the Sail operator (`sailoperator.io/v1`).

The `Istio` resource's `spec.values` are the user's `istioValues` (mesh-wide, then the cluster's)
with the program's own written over them: the cluster's identity and istiod's PILOT_ENV
(`mesh/config/istio_values.py`; the config refuses a user value that would differ from them).
"""

from __future__ import annotations

import copy
import json
from typing import Any, Mapping, Optional

from ..config import ClusterConfig, MeshConfig
from ..config.istio_values import PILOT_ENV
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


# What `up` waits for on `Istio` and `IstioCNI` (pulumi-kubernetes: every one of the list, each for
# the current generation): Ready alone is not enough, because an operator that refuses a change
# (an end-of-life version, a chart that fails to render) keeps the old istiod running and Ready and
# reports the refusal as Reconciled False; `up` must not call that done.
READY_CONDITIONS = ("Ready", "Reconciled")


def _ready_annotations() -> dict[str, str]:
    return {WAIT_FOR: json.dumps([f"condition={c}" for c in READY_CONDITIONS])}


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` merged into a copy of `base`, as Helm merges values: mappings key by key, anything
    else (a list, a scalar) replaces. Neither argument is changed."""
    merged = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def own_values(mesh: MeshConfig, cluster: ClusterConfig) -> dict[str, Any]:
    """What the program itself writes into a cluster's `spec.values`."""
    return {
        "global": {
            "meshID": mesh.mesh_id,
            "multiCluster": {"clusterName": cluster.cluster_name},
            "network": cluster.network,
        },
        "pilot": {"env": dict(PILOT_ENV)},
    }


def istio_values(mesh: MeshConfig, cluster: ClusterConfig) -> dict[str, Any]:
    """A cluster's `spec.values`: the mesh's `istioValues`, the cluster's over them, the program's
    own over both (a user value that would differ from those was refused by the config)."""
    return deep_merge(deep_merge(mesh.istio_values, cluster.istio_values), own_values(mesh, cluster))


def istio_manifest(mesh: MeshConfig, cluster: ClusterConfig) -> dict[str, Any]:
    return {
        "apiVersion": SAIL_API_VERSION,
        "kind": "Istio",
        "metadata": {"name": "default", "annotations": _ready_annotations()},
        "spec": {
            "version": mesh.istio_version,
            "namespace": ISTIO_NAMESPACE,
            "updateStrategy": {"type": mesh.update_strategy},
            "values": istio_values(mesh, cluster),
        },
    }


def sail_manifests(mesh: MeshConfig, cluster: ClusterConfig) -> list[dict[str, Any]]:
    """The Sail operator's resources a cluster gets whose status tells how it went: `Istio`, and
    `IstioCNI` when it is ours."""
    return [istio_manifest(mesh, cluster)] + ([istio_cni_manifest(mesh)] if mesh.manage_istio_cni else [])


def istio_revision_tag_manifest(mesh: MeshConfig) -> Optional[dict[str, Any]]:
    """With `updateStrategy: RevisionBased`, the operator names each revision after its version
    (`default-v1-30-3`), so the `istio-injection=enabled` namespaces and the `istio.io/rev: default`
    gateways would match none of them: the `default` IstioRevisionTag points them at the `Istio`
    resource's active revision, and the operator moves it on each version change (Sail's own advice
    for revision-based updates). InPlace keeps one revision named `default`: no tag."""
    if mesh.update_strategy != "RevisionBased":
        return None
    return {
        "apiVersion": SAIL_API_VERSION,
        "kind": "IstioRevisionTag",
        "metadata": {"name": "default", "annotations": {WAIT_FOR: "condition=Reconciled"}},
        "spec": {"targetRef": {"kind": "Istio", "name": "default"}},
    }


def update_strategy_refusal(mesh: MeshConfig, live: Mapping[str, Optional[Mapping[str, Any]]]) -> Optional[str]:
    """A running `Istio` keeps its update strategy: switched, the operator makes a revision of the
    other kind beside the one every workload uses, and the `default` tag (RevisionBased) cannot
    take the name of the InPlace revision `default` while it exists (the operator: NameAlreadyExists),
    so `up` would wait on it for good. `live`: each reachable cluster's Istio as it is."""
    running = {
        cluster: ((obj.get("spec") or {}).get("updateStrategy") or {}).get("type") or "InPlace"
        for cluster, obj in live.items()
        if obj
    }
    other = sorted(cluster for cluster, strategy in running.items() if strategy != mesh.update_strategy)
    if not other:
        return None
    return (
        f"config mesh:updateStrategy: {mesh.update_strategy!r}: the Istio resource on {', '.join(other)} runs "
        f"{running[other[0]]}, and a running Istio keeps its strategy (the operator would add a revision beside the "
        "one every workload uses, and the default revision tag cannot take its name). Nothing was changed: keep "
        f"{running[other[0]]!r}, or move the workloads yourself (docs/operations.md, Istio versions and upgrades)"
    )


def istio_cni_manifest(mesh: MeshConfig) -> dict[str, Any]:
    return {
        "apiVersion": SAIL_API_VERSION,
        "kind": "IstioCNI",
        # The CRD's CEL rule: the only IstioCNI is named "default".
        "metadata": {"name": "default", "annotations": _ready_annotations()},
        "spec": {"version": mesh.istio_version, "namespace": CNI_NAMESPACE},
    }
