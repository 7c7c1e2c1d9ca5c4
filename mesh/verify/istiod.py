"""What each istiod itself says (peers synced, remote endpoints), read through `istiod_access`."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import kubernetes
from kubernetes.client.exceptions import ApiException

from ..plan import gateway, samples
from ..config import ClusterConfig, MeshConfig
from ..plan.control_plane import istio_manifest
from ..plan.names import ISTIO_NAMESPACE
from ..plan.remote_secrets import remote_secret_name
from . import istiod_access
from . import istiod_answers as istiod_checks
from .control_plane import active_revision
from .results import FAIL, ISTIOD_PEERS, PASS, REMOTE_ENDPOINTS, Result, _not_found

# --- what istiod itself says ----------------------------------------------------------------


def _istiods(api, custom, mesh: MeshConfig, cluster: ClusterConfig) -> list[istiod_access.Istiod]:
    revision = active_revision(custom, mesh, cluster) or istio_manifest(mesh, cluster)["metadata"]["name"]
    found = istiod_access.find(api, revision)
    if not found:
        raise istiod_access.Unreachable(
            f"no Running, Ready istiod pod of revision {revision} in {ISTIO_NAMESPACE} (see the istiod check)"
        )
    return found


def _ask_each(api, istiods: Sequence[istiod_access.Istiod], path: str, timeout: float) -> list[tuple[str, Any]]:
    """(which istiod, its answer) for every ready istiod replica."""
    return [(i.describe(), istiod_access.get_json(api, i, path, timeout)) for i in istiods]


def _one_result(check: str, holder: ClusterConfig, item: str, verdicts: Sequence[tuple[str, str, str]]) -> Result:
    """One row from every replica's (who, status, detail): the first failure, naming the replica
    when there is more than one, else the first pass."""
    failed = [(who, detail) for who, status, detail in verdicts if status == FAIL]
    if not failed:
        return Result(check, holder.name, item, PASS, verdicts[0][2])
    who, detail = failed[0]
    return Result(check, holder.name, item, FAIL, f"{who}: {detail}" if len(verdicts) > 1 else detail)


def check_istiod_peers(
    api, mesh: MeshConfig, holder: ClusterConfig, remote_problems: Mapping[str, str], timeout: float
) -> list[Result]:
    """Every replica of `holder`'s istiod has every other cluster synced (`/debug/clusterz`)."""
    custom = kubernetes.client.CustomObjectsApi(api)
    try:
        answers = _ask_each(api, _istiods(api, custom, mesh, holder), "/debug/clusterz", timeout)
    except istiod_access.Unreachable as error:
        return [Result(ISTIOD_PEERS, holder.name, "istiod", FAIL, str(error))]
    results = []
    for peer in istiod_checks.peers(mesh.clusters, holder):
        problem = remote_problems.get(remote_secret_name(peer.cluster_name))
        verdicts = [(who, *istiod_checks.peer_result(holder, peer, clusterz, problem)) for who, clusterz in answers]
        results.append(_one_result(ISTIOD_PEERS, holder, f"peer {peer.name}", verdicts))
    return results


def _ready_helloworld_endpoints(api) -> int:
    slices = (
        kubernetes.client.DiscoveryV1Api(api)
        .list_namespaced_endpoint_slice(samples.NAMESPACE, label_selector="kubernetes.io/service-name=helloworld")
        .items
    )
    return sum(1 for s in slices for e in s.endpoints or [] if not e.conditions or e.conditions.ready is not False)


def _gateway_address(api) -> Optional[str]:
    try:
        service = kubernetes.client.CoreV1Api(api).read_namespaced_service(gateway.NAME, ISTIO_NAMESPACE)
    except ApiException as error:
        if _not_found(error):
            return None
        raise
    return gateway.ingress_address(service.status) or next(iter(service.spec.external_ips or []), None)


def check_remote_endpoints(
    apis: Mapping[str, Any], mesh: MeshConfig, holder: ClusterConfig, nodeless: set[str], timeout: float
) -> list[Result]:
    """`holder`'s istiod serves every other cluster's helloworld behind that cluster's gateway."""
    api = apis[holder.name]
    custom = kubernetes.client.CustomObjectsApi(api)
    try:
        istiods = _istiods(api, custom, mesh, holder)
        networkz = _ask_each(api, istiods, "/debug/networkz", timeout)
        shardz = _ask_each(api, istiods, "/debug/endpointShardz", timeout)
        clusterz = _ask_each(api, istiods, "/debug/clusterz", timeout)
    except istiod_access.Unreachable as error:
        return [Result(REMOTE_ENDPOINTS, holder.name, "istiod", FAIL, str(error))]
    results = []
    for peer in istiod_checks.peers(mesh.clusters, holder):
        peer_api = apis.get(peer.name)
        facts = (
            (None, False, True)
            if peer_api is None
            else (_gateway_address(peer_api), _ready_helloworld_endpoints(peer_api) > 0, peer.name not in nodeless)
        )
        verdicts = [
            (who, *istiod_checks.endpoint_result(holder, peer, networks, shards, *facts, clusters))
            for (who, networks), (_, shards), (_, clusters) in zip(networkz, shardz, clusterz)
        ]
        results.append(_one_result(REMOTE_ENDPOINTS, holder, f"helloworld of {peer.name}", verdicts))
    return results


def nodeless_clusters(apis: Mapping[str, Any], clusters: Sequence[ClusterConfig]) -> set[str]:
    """Clusters that have no Node at all (a lab; a cluster whose nodes are all gone)."""
    found = set()
    for cluster in clusters:
        try:
            if not kubernetes.client.CoreV1Api(apis[cluster.name]).list_node(limit=1).items:
                found.add(cluster.name)
        except Exception:  # noqa: BLE001 - may not list nodes: then say nothing about them
            pass
    return found
