"""Reaching a cluster's istiod debug interface (`/debug/clusterz`, `/debug/networkz`,
`/debug/endpointShardz`) from outside the cluster, the way `istioctl remote-clusters` does.

istiod serves its debug interface on the monitoring port (15014) to loopback callers without
credentials (pilot/pkg/xds/debug.go `allowAuthenticatedOrLocalhost`). istioctl reaches it by
port-forwarding to each Running istiod pod (pkg/kube `AllDiscoveryDo`), so a connection arrives
from the pod's own loopback. We find istiod the same way the cluster routes to it: through the
EndpointSlices of its Service (`istiod`, or `istiod-<revision>`):

- an endpoint whose `targetRef` is a Pod is an in-cluster istiod: port-forward to that pod;
- an endpoint with no pod behind it is an istiod outside the cluster (Istio's chart writes such a
  slice for an external control plane; the lab's istiods run that way): ask its address directly,
  which answers only when that address is this host's loopback.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any, Optional

import kubernetes
from kubernetes.stream import portforward

from .control_plane import ISTIO_NAMESPACE

MONITORING_PORT = 15014
MONITORING_PORT_NAME = "http-monitoring"


class Unreachable(Exception):
    """istiod could not be asked; the message says why and what to look at."""


@dataclass(frozen=True)
class Istiod:
    """One ready istiod endpoint of a cluster."""

    address: str
    port: int
    pod: Optional[str] = None

    def describe(self) -> str:
        return f"pod {self.pod}" if self.pod else f"{self.address}:{self.port} (outside the cluster)"


def service_name(revision: str) -> str:
    # Sail renders revision "default" without a suffix (the istiod chart's empty `revision`).
    return "istiod" if revision == "default" else f"istiod-{revision}"


def find(api: kubernetes.client.ApiClient, revision: str) -> list[Istiod]:
    """The ready istiod endpoints of `revision`, from its Service's EndpointSlices."""
    name = service_name(revision)
    slices = kubernetes.client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        ISTIO_NAMESPACE, label_selector=f"kubernetes.io/service-name={name}"
    ).items
    found = []
    for endpoint_slice in slices:
        ports = {p.name: p.port for p in endpoint_slice.ports or []}
        port = ports.get(MONITORING_PORT_NAME, MONITORING_PORT)
        for endpoint in endpoint_slice.endpoints or []:
            if endpoint.conditions is not None and endpoint.conditions.ready is False:
                continue
            pod = endpoint.target_ref.name if endpoint.target_ref and endpoint.target_ref.kind == "Pod" else None
            found.extend(Istiod(address, port, pod) for address in endpoint.addresses)
    return found


def _http_get(connection: http.client.HTTPConnection, path: str) -> bytes:
    connection.request("GET", path, headers={"Accept": "application/json"})
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise Unreachable(f"GET {path} answered HTTP {response.status}: {body[:200].decode(errors='replace')}")
    return body


class _SocketConnection(http.client.HTTPConnection):
    """An HTTP connection over an already open socket (a port-forward stream)."""

    def __init__(self, sock: Any, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.sock = sock

    def connect(self) -> None:  # the socket is already connected
        pass


def get_json(api: kubernetes.client.ApiClient, istiod: Istiod, path: str, timeout: float) -> Any:
    """GET `path` of istiod's debug interface and decode its JSON."""
    try:
        if istiod.pod:
            core = kubernetes.client.CoreV1Api(api)
            forward = portforward(
                core.connect_get_namespaced_pod_portforward, istiod.pod, ISTIO_NAMESPACE, ports=str(istiod.port)
            )
            try:
                sock = forward.socket(istiod.port)
                sock.settimeout(timeout)
                body = _http_get(_SocketConnection(sock, timeout), path)
            finally:
                forward.close()
        else:
            body = _http_get(http.client.HTTPConnection(istiod.address, istiod.port, timeout=timeout), path)
    except Unreachable:
        raise
    except Exception as error:  # noqa: BLE001 - transports fail in many ways; all mean the same
        raise Unreachable(f"cannot reach istiod ({istiod.describe()}): {type(error).__name__}: {error}") from error
    try:
        return json.loads(body)
    except ValueError as error:
        raise Unreachable(f"GET {path} from istiod ({istiod.describe()}) is not JSON: {error}") from error

