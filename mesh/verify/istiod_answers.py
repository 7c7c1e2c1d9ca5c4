"""What each cluster's istiod itself says about the mesh, read from its debug interface
(`mesh.istiod_access`): the data `istioctl remote-clusters` shows, and the endpoints it would hand
a sidecar for the other clusters' sample service.

- **istiod peers**: for every other cluster, istiod has a remote cluster of that clusterName,
  added from our remote secret, and `synced`. A failure names its cause: no remote secret for
  that peer; the peer refused the token or denied a read (from the remote-secret check of the
  same pair, which opens the secret's kubeconfig itself); or still syncing.
- **remote endpoints**: for every other cluster, istiod knows that cluster's network gateway
  (the east-west gateway's address, port 15443) and holds the peer's helloworld endpoints in the
  peer's shard, so a sidecar here is sent through that gateway. Where the peer has no helloworld
  endpoint of its own (no pod runs: say, no node), that is said instead.

The functions over debug data are pure, so they are tested with istiod's real answers.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from ..plan import samples
from ..config import ClusterConfig
from ..plan.remote_secrets import remote_secret_name

ISTIOD_PEERS = "istiod peers"
REMOTE_ENDPOINTS = "remote endpoints"
# The port istiod routes cross-network traffic to on a network's gateway (Istio's default,
# `networking.istio.io/gatewayPort`), which our gateway Service exposes as `tls`.
CROSS_NETWORK_PORT = 15443
HELLOWORLD_HOST = f"helloworld.{samples.NAMESPACE}.svc.cluster.local"
# Said wherever a check needs a pod on a cluster that has no Node: a fact, not something to wait for.
NO_NODE = "the cluster has no node to run pods (0 Nodes)"


def remote_clusters(clusterz: Any) -> dict[str, dict]:
    """`/debug/clusterz` ({id, secretName, syncStatus} each) by cluster ID."""
    return {entry["id"]: entry for entry in clusterz or []}


def peer_result(
    holder: ClusterConfig, peer: ClusterConfig, clusterz: Any, remote_secret_problem: Optional[str]
) -> tuple[str, str]:
    """(status, detail) of `holder`'s istiod reading `peer`."""
    entry = remote_clusters(clusterz).get(peer.cluster_name)
    secret = remote_secret_name(peer.cluster_name)
    if entry is None:
        cause = (
            f"its remote secret is wrong: {remote_secret_problem}"
            if remote_secret_problem
            else f"istiod has not (yet) read secret {secret}"
        )
        return "fail", f"istiod has no remote cluster {peer.cluster_name}: {cause}"
    status = entry.get("syncStatus")
    source = entry.get("secretName") or "?"
    if status == "synced":
        return "pass", f"{peer.name} ({peer.cluster_name}) synced, from secret {source}"
    cause = (
        f"the remote-secret check says: {remote_secret_problem}"
        if remote_secret_problem
        else f"look for 401/403 or timeouts in istiod's log about {peer.cluster_name}"
    )
    return "fail", f"{peer.name} ({peer.cluster_name}) is {status or 'not synced'}, from secret {source}: {cause}"


def network_gateways(networkz: Any) -> dict[str, list[tuple[str, int]]]:
    """`/debug/networkz` ({Network, Addr, Port, ...} each): every network's gateways as (address, port)."""
    gateways: dict[str, list[tuple[str, int]]] = {}
    for gw in networkz or []:
        gateways.setdefault(gw["Network"], []).append((gw["Addr"], int(gw.get("Port") or 0)))
    return gateways


def shard_endpoints(shardz: Any, host: str, namespace: str) -> dict[str, list[dict]]:
    """`/debug/endpointShardz` for one service: its endpoints by the cluster they came from."""
    service = ((shardz or {}).get(host) or {}).get(namespace) or {}
    shards = service.get("Shards") or {}
    by_cluster: dict[str, list[dict]] = {}
    for key, endpoints in shards.items():
        # Shard keys are "<provider>/<cluster>" (Kubernetes/cluster2).
        by_cluster.setdefault(key.rsplit("/", 1)[-1], []).extend(endpoints or [])
    return by_cluster


def endpoint_result(
    holder: ClusterConfig,
    peer: ClusterConfig,
    networkz: Any,
    shardz: Any,
    peer_gateway_address: Optional[str],
    peer_has_endpoints: bool,
    peer_has_nodes: bool,
    clusterz: Any = None,
) -> tuple[str, str]:
    """(status, detail): does `holder`'s istiod send sidecars to `peer`'s helloworld through
    `peer`'s east-west gateway?"""
    problems = []
    gateways = network_gateways(networkz).get(peer.network, [])
    expected = (peer_gateway_address, CROSS_NETWORK_PORT)
    if not gateways:
        problems.append(
            f"istiod knows no gateway for network {peer.network}: does {peer.name}'s east-west gateway Service "
            f"have an address and the label topology.istio.io/network={peer.network}?"
        )
    elif peer_gateway_address and expected not in gateways:
        shown = ", ".join(f"{a}:{p}" for a, p in gateways)
        problems.append(
            f"istiod's gateway for {peer.network} is {shown}, not {peer_gateway_address}:{CROSS_NETWORK_PORT}"
        )
    endpoints = shard_endpoints(shardz, HELLOWORLD_HOST, samples.NAMESPACE).get(peer.cluster_name, [])
    synced = (remote_clusters(clusterz).get(peer.cluster_name) or {}).get("syncStatus") == "synced"
    if not endpoints:
        if clusterz is not None and not synced:
            problems.append(f"istiod does not read {peer.name} (see istiod peers), so it has none of its endpoints")
        elif not peer_has_endpoints:
            why = f"no pod runs there: {NO_NODE}" if not peer_has_nodes else "it has no ready helloworld pod"
            problems.append(f"{peer.name} itself has no helloworld endpoint ({why})")
        else:
            problems.append(
                f"synced but no endpoints: {peer.name} has ready helloworld endpoints, istiod here has none from "
                f"{peer.cluster_name}"
            )
    if problems:
        return "fail", "; ".join(problems)
    return "pass", (
        f"{len(endpoints)} helloworld endpoint(s) of {peer.name}, reached through "
        f"{peer_gateway_address}:{CROSS_NETWORK_PORT}"
    )


def peers(clusters: Sequence[ClusterConfig], holder: ClusterConfig) -> list[ClusterConfig]:
    return [c for c in clusters if c is not holder]
