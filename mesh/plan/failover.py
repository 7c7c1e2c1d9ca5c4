"""Failover for chosen Services (`mesh:failover`): on every cluster, one DestinationRule per
Service with outlier detection and locality load balancing, as Istio's "Locality failover" task
and its multicluster guidance set them up.

What it changes: each sidecar counts, per endpoint of the Service (a local pod, or a remote
cluster's pods behind its east-west gateway), errors in a row (5xx answers, connect failures and
resets, Envoy's `consecutive_5xx` with local-origin errors counted alike); after
`consecutiveErrors` of them the endpoint is ejected for `baseEjectionTime` (longer each time) and
requests go to the others, up to all of them (`maxEjectionPercent: 100`); a connect waits
`connectTimeout` (Istio's default is 10 s). Locality load balancing is on: where nodes carry
`topology.kubernetes.io/region` and `zone`, a cluster's requests stay in its own locality while it
is healthy and fail over when it is ejected; without those labels (the lab), requests stay spread
over every cluster, and a failing one is taken out.
"""

from __future__ import annotations

from typing import Any

from ..config import MeshConfig

NETWORKING_API_VERSION = "networking.istio.io/v1"


def failover_manifests(mesh: MeshConfig) -> list[dict[str, Any]]:
    """One DestinationRule per `mesh:failover.services` entry; [] while the option is off."""
    settings = mesh.failover
    rules = []
    for service in settings.services:
        name, namespace = service.split(".", 1)
        rules.append(
            {
                "apiVersion": NETWORKING_API_VERSION,
                "kind": "DestinationRule",
                "metadata": {"name": f"{name}-failover", "namespace": namespace},
                "spec": {
                    "host": f"{name}.{namespace}.svc.cluster.local",
                    "trafficPolicy": {
                        "connectionPool": {"tcp": {"connectTimeout": f"{settings.connect_timeout_seconds}s"}},
                        "loadBalancer": {"simple": "ROUND_ROBIN", "localityLbSetting": {"enabled": True}},
                        "outlierDetection": {
                            "consecutive5xxErrors": settings.consecutive_errors,
                            "interval": f"{settings.interval_seconds}s",
                            "baseEjectionTime": f"{settings.base_ejection_seconds}s",
                            "maxEjectionPercent": 100,
                        },
                    },
                },
            }
        )
    return rules
