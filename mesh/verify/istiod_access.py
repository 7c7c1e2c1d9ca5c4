"""Reaching a cluster's istiod debug interface (`/debug/clusterz`, `/debug/networkz`,
`/debug/endpointShardz`) from outside the cluster, the way `istioctl remote-clusters` does.

istiod serves its debug interface on the monitoring port (15014) to loopback callers without
credentials (pilot/pkg/xds/debug.go `allowAuthenticatedOrLocalhost`). istioctl finds istiod as the
Running pods labelled `app=istiod` and port-forwards to each (pkg/kube `AllDiscoveryDo`), so its
connection arrives from the pod's own loopback. We do the same, with one addition: a pod whose IP
is a loopback address runs on this very host (the lab's istiods do), and is asked at that
address directly, which istiod also answers as a loopback caller.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
from dataclasses import dataclass
from typing import Any

import kubernetes

from ..plan.names import ISTIO_NAMESPACE
from .clients import pod_port_forward

MONITORING_PORT = 15014
MONITORING_PORT_NAME = "http-monitoring"


class Unreachable(Exception):
    """istiod could not be asked; the message says why and what to look at."""


@dataclass(frozen=True)
class Istiod:
    """One Running, Ready istiod pod of a cluster."""

    pod: str
    ip: str
    port: int

    @property
    def on_this_host(self) -> bool:
        try:
            return ipaddress.ip_address(self.ip).is_loopback
        except ValueError:
            return False

    def describe(self) -> str:
        return f"pod {self.pod} at {self.ip}" if self.on_this_host else f"pod {self.pod}"


def find(api: kubernetes.client.ApiClient, revision: str) -> list[Istiod]:
    """The Running, Ready istiod pods of `revision` (istioctl's selector, plus the revision)."""
    pods = (
        kubernetes.client.CoreV1Api(api)
        .list_namespaced_pod(
            ISTIO_NAMESPACE, label_selector=f"app=istiod,istio.io/rev={revision}", field_selector="status.phase=Running"
        )
        .items
    )
    found = []
    for pod in pods:
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        if not ready or not pod.status.pod_ip or pod.metadata.deletion_timestamp:
            continue
        ports = {p.name: p.container_port for c in pod.spec.containers for p in c.ports or []}
        found.append(Istiod(pod.metadata.name, pod.status.pod_ip, ports.get(MONITORING_PORT_NAME, MONITORING_PORT)))
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
        if not istiod.on_this_host:
            forward = pod_port_forward(api, istiod.pod, ISTIO_NAMESPACE, ports=str(istiod.port))
            try:
                sock = forward.socket(istiod.port)
                sock.settimeout(timeout)
                body = _http_get(_SocketConnection(sock, timeout), path)
            finally:
                forward.close()
        else:
            body = _http_get(http.client.HTTPConnection(istiod.ip, istiod.port, timeout=timeout), path)
    except Unreachable:
        raise
    except Exception as error:  # noqa: BLE001 - transports fail in many ways; all mean the same
        raise Unreachable(f"cannot reach istiod ({istiod.describe()}): {type(error).__name__}: {error}") from error
    try:
        return json.loads(body)
    except ValueError as error:
        raise Unreachable(f"GET {path} from istiod ({istiod.describe()}) is not JSON: {error}") from error
