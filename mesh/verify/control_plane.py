"""`Istio`/`IstioCNI` Ready, istiod's Deployment, and the east-west gateway."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from kubernetes.client.exceptions import ApiException

from ..plan import gateway
from ..config import ClusterConfig, MeshConfig
from ..plan.control_plane import istio_manifest, sail_manifests
from ..plan.names import ISTIO_NAMESPACE, istiod_deployment_name
from .results import (
    CONTROL_PLANE,
    FAIL,
    GATEWAY,
    ISTIOD,
    NO_NODE,
    RECREATE,
    SKIP,
    Result,
    _not_found,
    _result,
    conditions,
)

# --- control plane: Istio, IstioCNI, istiod -----------------------------------------------


def sail_object(custom, manifest: Mapping[str, Any]) -> dict:
    """The Sail resource `manifest` names, as it is in the cluster (`custom`: a CustomObjectsApi)."""
    group, version = manifest["apiVersion"].split("/")
    # Both Sail kinds are cluster-scoped; their plurals are the lower-case kind plus "s".
    return custom.get_cluster_custom_object(
        group, version, manifest["kind"].lower() + "s", manifest["metadata"]["name"]
    )


def check_control_plane(custom, mesh: MeshConfig, cluster: ClusterConfig) -> list[Result]:
    """`Istio` and `IstioCNI` Ready for their current spec, with the operator's message if not."""
    results = []
    for manifest in sail_manifests(mesh, cluster):
        item = f"{manifest['kind']} {manifest['metadata']['name']}"
        try:
            obj = sail_object(custom, manifest)
        except ApiException as error:
            if not _not_found(error):
                raise
            results.append(Result(CONTROL_PLANE, cluster.name, item, FAIL, f"not found: {RECREATE}"))
            continue
        status = obj.get("status") or {}
        ready = conditions(obj).get("Ready", {})
        problems = []
        if status.get("observedGeneration") != obj["metadata"].get("generation"):
            problems.append(
                f"the operator has not reconciled generation {obj['metadata'].get('generation')} yet "
                f"(observed {status.get('observedGeneration')}): is the Sail operator running?"
            )
        elif ready.get("status") != "True":
            said = ": ".join(filter(None, (ready.get("reason"), ready.get("message"))))
            problems.append(f"not Ready (state {status.get('state', 'unknown')}): {said or 'no Ready condition yet'}")
        elif (reconciled := conditions(obj).get("Reconciled", {})).get("status") == "False":
            # What runs is Ready, but it is not what the spec asks for: the operator refused it.
            said = ": ".join(filter(None, (reconciled.get("reason"), reconciled.get("message"))))
            problems.append(
                f"Ready, but the operator could not apply its spec (state {status.get('state', 'unknown')}): {said}"
            )
        results.append(_result(CONTROL_PLANE, cluster.name, item, problems, f"Ready, state {status.get('state')}"))
    if not mesh.manage_istio_cni:
        results.append(
            Result(CONTROL_PLANE, cluster.name, "IstioCNI default", SKIP, "mesh:manageIstioCni is false: not ours")
        )
    return results


def _deployment_problems(apps, name: str, namespace: str, nodeless: bool = False) -> list[str]:
    try:
        deployment = apps.read_namespaced_deployment(name, namespace)
    except ApiException as error:
        if _not_found(error):
            return [f"Deployment {namespace}/{name} not found"]
        raise
    status = deployment.status
    available = next((c for c in status.conditions or [] if c.type == "Available"), None)
    if (status.available_replicas or 0) >= 1 and available is not None and available.status == "True":
        return []
    reason = f": {available.message}" if available is not None and available.message else ""
    where = NO_NODE if nodeless else "look at its pods' events"
    return [
        f"Deployment {namespace}/{name} is not available ({status.available_replicas or 0} replicas "
        f"available{reason}); {where}"
    ]


def active_revision(custom, mesh: MeshConfig, cluster: ClusterConfig) -> Optional[str]:
    """The revision the operator reports active (the `Istio`'s name until it reports one), or
    None when there is no `Istio` resource."""
    manifest = istio_manifest(mesh, cluster)
    try:
        istio = sail_object(custom, manifest)
    except ApiException as error:
        if not _not_found(error):
            raise
        return None
    return (istio.get("status") or {}).get("activeRevisionName") or manifest["metadata"]["name"]


def check_istiod(custom, apps, mesh: MeshConfig, cluster: ClusterConfig, nodeless: bool = False) -> list[Result]:
    """The active revision's istiod Deployment has an available replica."""
    revision = active_revision(custom, mesh, cluster)
    if revision is None:
        return [Result(ISTIOD, cluster.name, "istiod", FAIL, "no Istio resource, so no istiod")]
    name = istiod_deployment_name(revision)
    problems = _deployment_problems(apps, name, ISTIO_NAMESPACE, nodeless)
    return [_result(ISTIOD, cluster.name, f"Deployment {name}", problems, f"available (revision {revision})")]


# --- east-west gateway --------------------------------------------------------------------


def check_gateway(core, apps, cluster: ClusterConfig, nodeless: bool = False) -> list[Result]:
    """The gateway's pods are available and its Service has an address peers can reach."""
    results = [
        _result(
            GATEWAY,
            cluster.name,
            f"Deployment {gateway.NAME}",
            _deployment_problems(apps, gateway.NAME, ISTIO_NAMESPACE, nodeless),
            "available",
        )
    ]
    item = f"Service {gateway.NAME}"
    try:
        service = core.read_namespaced_service(gateway.NAME, ISTIO_NAMESPACE)
    except ApiException as error:
        if not _not_found(error):
            raise
        results.append(Result(GATEWAY, cluster.name, item, FAIL, f"not found: {RECREATE}"))
        return results
    # A load balancer's address, or an address given by hand (istio/istio#29359).
    address = gateway.ingress_address(service.status) or next(iter(service.spec.external_ips or []), None)
    problems = (
        []
        if address
        else [
            f"has no address (status.loadBalancer.ingress is empty), so cross-network traffic cannot flow "
            f"into {cluster.name}: look at the Service's events and the load-balancer controller"
        ]
    )
    results.append(_result(GATEWAY, cluster.name, item, problems, f"address {address}"))
    return results
