"""Kubernetes API clients for `mesh verify`: every call has a timeout; one per cluster context; a
pod exec or port-forward on a client of its own."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import kubernetes
import yaml
from kubernetes.stream import portforward, stream

from ..config import ClusterConfig
from .results import API_SERVERS, FAIL, PASS, Result, api_error

# --- clients ------------------------------------------------------------------------------


class _TimedApiClient(kubernetes.client.ApiClient):
    """An ApiClient whose every call has a timeout: a verify must never hang on one cluster."""

    def __init__(self, configuration: kubernetes.client.Configuration, request_timeout: float):
        super().__init__(configuration)
        self.request_timeout = request_timeout

    def call_api(self, *args, _request_timeout=None, **kwargs):
        return super().call_api(*args, _request_timeout=_request_timeout or self.request_timeout, **kwargs)


def client_from_kubeconfig(document: Mapping[str, Any], context: Optional[str], request_timeout: float):
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config_from_dict(
        dict(document), context=context, client_configuration=configuration, persist_config=False
    )
    # One retry, not urllib3's three, on a dead server: the waits below do the retrying.
    configuration.retries = 1
    return _TimedApiClient(configuration, request_timeout)


def connect(cluster: ClusterConfig, request_timeout: float) -> kubernetes.client.ApiClient:
    """A client for `cluster` through the same kubeconfig and context the program uses."""
    if cluster.kubeconfig_is_content:
        text = cluster.kubeconfig
    else:
        with open(cluster.kubeconfig, encoding="utf-8") as handle:
            text = handle.read()
    return client_from_kubeconfig(yaml.safe_load(text), cluster.context, request_timeout)


def check_api_server(api: kubernetes.client.ApiClient, cluster: ClusterConfig) -> Result:
    """The cluster answers through its kubeconfig context; nothing else can be checked if not."""
    item = f"context {cluster.context}"
    try:
        version = kubernetes.client.VersionApi(api).get_code().git_version
    except Exception as error:  # noqa: BLE001 - any failure means unreachable, and says why
        return Result(API_SERVERS, cluster.name, item, FAIL, f"unreachable: {api_error(error)}")
    return Result(API_SERVERS, cluster.name, item, PASS, f"Kubernetes {version}")


# --- pod exec and port-forward ------------------------------------------------------------
# kubernetes.stream swaps `call_api` on the client it is handed for the length of the call
# (kubernetes-client/python#928), so meanwhile every other call on that client, from any thread,
# goes out as a websocket handshake and fails ("Handshake status 200 OK"), and two such calls at
# once can leave the client swapped for good. In the lab, two execs and two pod lists at once on
# one client failed 80 of 160 calls; with a client of its own per exec, none. Hence each exec and
# port-forward opens on a client of its own, on the shared client's configuration (a websocket
# call uses nothing else of the client).


def pod_exec(api: kubernetes.client.ApiClient, pod: str, namespace: str, **kwargs):
    """`kubernetes.stream.stream(connect_get_namespaced_pod_exec, ...)`, safe beside other calls on
    `api` from other threads."""
    with kubernetes.client.ApiClient(api.configuration) as own:
        return stream(kubernetes.client.CoreV1Api(own).connect_get_namespaced_pod_exec, pod, namespace, **kwargs)


def pod_port_forward(api: kubernetes.client.ApiClient, pod: str, namespace: str, ports: str):
    """`kubernetes.stream.portforward(connect_get_namespaced_pod_portforward, ...)`, safe beside
    other calls on `api` from other threads."""
    with kubernetes.client.ApiClient(api.configuration) as own:
        core = kubernetes.client.CoreV1Api(own)
        return portforward(core.connect_get_namespaced_pod_portforward, pod, namespace, ports=ports)
