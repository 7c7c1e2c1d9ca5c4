"""Each check's result record, the check names in report order, and how an API failure reads."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import urllib3
from kubernetes.client.exceptions import ApiException

from ..plan import samples
from . import istiod_answers as istiod_checks

API_SERVERS = "API servers"
CONTROL_PLANE = "Istio and IstioCNI"
ISTIOD = "istiod"
GATEWAY = "east-west gateway"
CACERTS = "cacerts"
ISSUANCE = "cert-manager issuance"
REMOTE_SECRETS = "remote secrets"
SAMPLE_PODS = "sample pods"
TRAFFIC = "traffic"
ISTIOD_PEERS = istiod_checks.ISTIOD_PEERS
REMOTE_ENDPOINTS = istiod_checks.REMOTE_ENDPOINTS
CHECKS = (
    API_SERVERS,
    CONTROL_PLANE,
    ISTIOD,
    GATEWAY,
    ISSUANCE,
    CACERTS,
    REMOTE_SECRETS,
    ISTIOD_PEERS,
    SAMPLE_PODS,
    REMOTE_ENDPOINTS,
    TRAFFIC,
)
NO_NODE = istiod_checks.NO_NODE

HELLOWORLD_URL = f"helloworld.{samples.NAMESPACE}:{samples.HELLOWORLD_PORT}/hello"
SLEEP = "sleep"
# What helloworld answers: "Hello version: v1, instance: helloworld-v1-776f57d5f6-s7zfc".
_HELLO = re.compile(r"Hello version: (?P<version>[^,\s]+), instance: (?P<instance>\S+)")
# An object deleted behind Pulumi's back is only recreated after a refresh.
RECREATE = "`pulumi up --refresh` recreates it"


PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass(frozen=True)
class Result:
    check: str
    cluster: str
    item: str
    status: str
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    @property
    def final(self) -> bool:
        """A failure that waiting cannot cure (no node will appear by itself)."""
        return self.failed and NO_NODE in self.detail


def _result(check: str, cluster: str, item: str, problems: Sequence[str], good: str) -> Result:
    """One record: passed with `good`, or failed with every problem found."""
    if problems:
        return Result(check, cluster, item, FAIL, "; ".join(problems))
    return Result(check, cluster, item, PASS, good)


def api_error(error: Exception) -> str:
    """A short, readable reason for a failed API call."""
    if isinstance(error, ApiException):
        # The exec websocket reports a refused upgrade as status 0 with the API server's Status
        # document at the end of `reason` ("Handshake status 400 ... -+-+- {...}").
        message = error.reason or ""
        for document in (error.body, message.rsplit("-+-+-", 1)[-1]):
            try:
                message = json.loads(document or "").get("message") or message
                break
            except (TypeError, ValueError, AttributeError):
                continue
        return f"API error {error.status}: {message}".strip()
    if isinstance(error, urllib3.exceptions.MaxRetryError):
        return f"cannot reach the API server: {error.reason}"
    return f"{type(error).__name__}: {error}"


def conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """A Kubernetes object's status conditions by type (Sail's and cert-manager's alike)."""
    return {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}


def _not_found(error: Exception) -> bool:
    return isinstance(error, ApiException) and error.status == 404
