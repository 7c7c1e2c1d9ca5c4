"""Failover for chosen Services (`mesh:failover`): on every cluster, one DestinationRule per
Service with outlier detection and locality load balancing, as Istio's "Locality failover" task
and its multicluster guidance set them up.

What it changes: each sidecar counts, per endpoint of the Service (a local pod, or a remote
cluster's pods behind its east-west gateway), errors in a row (5xx answers, connect failures and
resets, Envoy's `consecutive_5xx` with local-origin errors counted alike); after
`consecutiveErrors` of them the endpoint is ejected for `baseEjectionTime` (longer each time) and
requests go to the others, up to all of them (`maxEjectionPercent: 100`); a connect waits
`connectTimeout` (Istio's default is 10 s).

`mode` says where requests go while every cluster is healthy:

- `spread` (active-active, the walk-through's both versions from both sides): locality load
  balancing off in the rule, so requests keep going to every cluster's endpoints, and a failing
  cluster is taken out. (Outlier detection alone would switch Istio's locality load balancing on:
  the mesh default `localityLbSetting.enabled` takes effect only with it.)
- `local-first` (Istio's locality failover): each cluster's requests stay on its own endpoints
  while they are healthy, and fail over to the other clusters when they are ejected. Measured in
  the lab: east heard only v1, west only v2, until its own helloworld failed.
"""

from __future__ import annotations

from typing import Any

from ..config import MeshConfig
from ..config.schema import FAILOVER_MODES

NETWORKING_API_VERSION = "networking.istio.io/v1"
SPREAD, LOCAL_FIRST = FAILOVER_MODES


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
                        "loadBalancer": {
                            "simple": "ROUND_ROBIN",
                            "localityLbSetting": {"enabled": settings.mode == LOCAL_FIRST},
                        },
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
