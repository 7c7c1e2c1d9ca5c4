"""Kubernetes API clients for `mesh verify`: every call has a timeout; one per cluster context."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import kubernetes
import yaml

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
