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

from typing import Any, Iterable, Mapping

from ..config import MeshConfig
from ..config.schema import FAILOVER_MODES

NETWORKING_API_VERSION = "networking.istio.io/v1"
SPREAD, LOCAL_FIRST = FAILOVER_MODES


def failover_manifests(mesh: MeshConfig) -> list[dict[str, Any]]:
    """One DestinationRule per `mesh:failover.services` entry; [] while the option is off."""
    settings = mesh.failover
    rules = []
    for service in settings.services:
        rule, namespace = rule_name(service)
        rules.append(
            {
                "apiVersion": NETWORKING_API_VERSION,
                "kind": "DestinationRule",
                "metadata": {"name": rule, "namespace": namespace},
                "spec": {
                    "host": service_host(service),
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


ROOT_NAMESPACE = "istio-system"
"""Istio's config root namespace (the mesh default): its rules count only for clients in it."""


def rule_name(service: str) -> tuple[str, str]:
    """The name and namespace of the failover rule for `<name>.<namespace>`."""
    name, namespace = service.split(".", 1)
    return f"{name}-failover", namespace


def service_host(service: str) -> str:
    """The Service's host as istiod knows it: `<name>.<namespace>.svc.cluster.local`."""
    return f"{service}.svc.cluster.local"


def _host(rule: Mapping[str, Any]) -> str:
    """The rule's host as istiod resolves it: a name without a dot is short for a Service of the
    rule's own namespace; anything else is taken as written."""
    written = str((rule.get("spec") or {}).get("host") or "")
    if written and written != "*" and "." not in written:
        return f"{written}.{rule['metadata']['namespace']}.svc.cluster.local"
    return written


def _covers(host: str, fqdn: str) -> bool:
    return host == fqdn or (host.startswith("*") and fqdn.endswith(host[1:]))


def clashes(mesh: MeshConfig, rules: Iterable[Mapping[str, Any]]) -> list[str]:
    """Which of one cluster's DestinationRules (as its API server lists them) would keep a
    failover rule from taking effect, each said for the refusal. istiod picks a client's rule for
    a host from the client's own namespace first (the most specific host there, wildcards too),
    then from the Service's namespace, where rules for the same host are merged but only one
    top-level `trafficPolicy` is kept (the older rule's, by istiod's code; in the lab either one,
    run to run). So: another rule for the host in the Service's namespace with a `trafficPolicy`
    of its own, and any rule covering the host in a third namespace (its clients use it instead).
    Rules in the root namespace count only for clients there, and a rule without a top-level
    policy beside ours is merged: neither is a clash."""
    found = []
    for service in mesh.failover.services:
        ours_name, service_namespace = rule_name(service)
        fqdn = service_host(service)
        for rule in rules:
            metadata = rule.get("metadata") or {}
            namespace, name = metadata.get("namespace"), metadata.get("name")
            host = _host(rule)
            if (namespace, name) == (service_namespace, ours_name) or namespace == ROOT_NAMESPACE:
                continue
            if namespace == service_namespace:
                if host == fqdn and (rule.get("spec") or {}).get("trafficPolicy"):
                    found.append(
                        f"{service!r}: DestinationRule {namespace}/{name} sets a trafficPolicy for {fqdn} too "
                        "(istiod takes one of the two policies and ignores the other)"
                    )
            elif _covers(host, fqdn):
                found.append(
                    f"{service!r}: DestinationRule {namespace}/{name} (host {host!r}) is what clients in namespace "
                    f"{namespace} use for {fqdn} instead of the failover rule"
                )
    return found
