"""What the lab adds on its clusters to measure traffic (the lab tests and bench/without_downtime.py):
`helloworld-fresh`, a second Service of the sample's helloworld pods whose DestinationRule allows
one request per upstream connection and whose VirtualService retries nothing. Each request to it
is then exactly one new mTLS handshake from the client's sidecar to the answering one (through the
east-west gateway across clusters), checked against the trust bundles of that moment, and a failed
handshake is a failed request: to helloworld itself Envoy keeps its pooled connections for a whole
run (seen: 3 connections for 200 requests), and Istio's default retries take a request whose
connection fails to another endpoint (the local one), hiding a cross-cluster trust break. Not part
of the mesh the program makes.
"""

from __future__ import annotations

from typing import Iterable

import kubernetes

FRESH = "helloworld-fresh"
FRESH_URL = f"{FRESH}.sample:5000/hello"

SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": FRESH, "namespace": "sample", "labels": {"app": "helloworld"}},
    "spec": {"ports": [{"port": 5000, "name": "http"}], "selector": {"app": "helloworld"}},
}
RULE = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "DestinationRule",
    "metadata": {"name": FRESH, "namespace": "sample"},
    "spec": {
        "host": f"{FRESH}.sample.svc.cluster.local",
        "trafficPolicy": {"connectionPool": {"http": {"maxRequestsPerConnection": 1}}},
    },
}

ROUTE = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": FRESH, "namespace": "sample"},
    "spec": {
        "hosts": [f"{FRESH}.sample.svc.cluster.local"],
        "http": [
            {"route": [{"destination": {"host": f"{FRESH}.sample.svc.cluster.local"}}], "retries": {"attempts": 0}}
        ],
    },
}


def fresh_handshakes(clients: Iterable[kubernetes.client.ApiClient]) -> None:
    """The Service, its rule and its route on every cluster (server-side apply: again is harmless)."""
    for client in clients:
        dynamic = kubernetes.dynamic.DynamicClient(client)
        for obj in (SERVICE, RULE, ROUTE):
            dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"]).server_side_apply(
                body=obj, namespace="sample", field_manager="mesh-lab", force_conflicts=True
            )


def endpoint_counters(
    clusters_text: str, service: str, names: Iterable[str] = ("cx_total", "rq_total")
) -> dict[str, dict[str, int]]:
    """From a sidecar's Envoy `/clusters` page: per endpoint (`address:port`) of the `sample`
    namespace's `service` on port 5000, the counters `names`."""
    wanted = set(names)
    counters: dict[str, dict[str, int]] = {}
    for line in clusters_text.splitlines():
        parts = line.split("::")
        if line.startswith(f"outbound|5000||{service}.sample.") and len(parts) == 4 and parts[2] in wanted:
            counters.setdefault(parts[1], {})[parts[2]] = int(parts[3])
    return counters


def handshake_counters(clusters_text: str) -> dict[str, dict[str, int]]:
    """Per helloworld-fresh endpoint, its upstream connections and requests (`cx_total`, `rq_total`)."""
    return endpoint_counters(clusters_text, FRESH)
