"""The sample pods, and traffic: the article's curl from each cluster's sleep to helloworld."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream
from websocket import WebSocketException

from ..plan import samples
from ..config import ClusterConfig, MeshConfig
from .results import _HELLO, FAIL, HELLOWORLD_URL, NO_NODE, SAMPLE_PODS, SLEEP, TRAFFIC, Result, _result, api_error

# --- sample apps --------------------------------------------------------------------------


def sample_deployments(cluster: ClusterConfig) -> dict[str, dict]:
    """The sample Deployments on `cluster`, by name, exactly as the program creates them."""
    return {
        m["metadata"]["name"]: m
        for m in samples.sample_manifests(cluster.helloworld_version)
        if m["kind"] == "Deployment"
    }


def _selector(deployment: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())


def _pod_ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def ready_pods(core, deployment: Mapping[str, Any]) -> tuple[list, list]:
    """(Ready pods, all pods) of a sample Deployment."""
    pods = core.list_namespaced_pod(samples.NAMESPACE, label_selector=_selector(deployment)).items
    return [p for p in pods if _pod_ready(p) and not p.metadata.deletion_timestamp], pods


def check_sample_pods(core, cluster: ClusterConfig, nodeless: bool = False) -> list[Result]:
    results = []
    for name, deployment in sample_deployments(cluster).items():
        ready, pods = ready_pods(core, deployment)
        problems = []
        if not ready:
            seen = ", ".join(f"{p.metadata.name} {p.status.phase}" for p in pods) or "none"
            where = NO_NODE if nodeless else f"look at `kubectl -n {samples.NAMESPACE} describe pod`"
            problems.append(f"no Ready pod (pods: {seen}); {where}")
        results.append(_result(SAMPLE_PODS, cluster.name, f"Deployment {name}", problems, f"{len(ready)} Ready"))
    return results


# --- traffic ------------------------------------------------------------------------------

Exec = Callable[[str], str]
"""Runs the article's curl once in the sleep pod of the named cluster; returns its output."""


class ExecError(Exception):
    """The curl could not be run at all (no pod, exec refused): further tries are pointless."""


def curl_command(timeout: float) -> list[str]:
    # --max-time: a blackholed gateway must not leave curl waiting longer than we do.
    return ["curl", "-sS", "--max-time", str(int(max(timeout, 1))), HELLOWORLD_URL]


class PodExec:
    """The real `Exec`: the pod exec API into a Ready pod of Deployment `sleep` (container `sleep`)."""

    def __init__(self, mesh: MeshConfig, apis: Mapping[str, kubernetes.client.ApiClient], request_timeout: float):
        self.clusters = {c.name: c for c in mesh.clusters}
        self.apis = apis
        self.request_timeout = request_timeout
        self._pods: dict[str, str] = {}

    def _pod(self, core, cluster: ClusterConfig) -> str:
        if cluster.name not in self._pods:
            ready, _ = ready_pods(core, sample_deployments(cluster)[SLEEP])
            if not ready:
                raise ExecError(f"no Ready pod of Deployment {SLEEP} in namespace {samples.NAMESPACE}")
            self._pods[cluster.name] = ready[0].metadata.name
        return self._pods[cluster.name]

    def __call__(self, cluster_name: str) -> str:
        cluster = self.clusters[cluster_name]
        core = kubernetes.client.CoreV1Api(self.apis[cluster_name])
        try:
            pod = self._pod(core, cluster)
            container = sample_deployments(cluster)[SLEEP]["spec"]["template"]["spec"]["containers"][0]["name"]
            return stream(
                core.connect_get_namespaced_pod_exec,
                pod,
                samples.NAMESPACE,
                container=container,
                command=curl_command(self.request_timeout - 1),
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
                _request_timeout=self.request_timeout,
            )
        except (ApiException, WebSocketException, OSError, urllib3.exceptions.HTTPError) as error:
            raise ExecError(f"exec into {samples.NAMESPACE}/{SLEEP} failed: {api_error(error)}") from error


def parse_response(output: str) -> tuple[Optional[str], Optional[str]]:
    """(helloworld version, None) for an answer, (None, the error line) for anything else."""
    match = _HELLO.search(output)
    if match:
        return match.group("version"), None
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return None, (lines[0] if lines else "empty response")


@dataclass
class TrafficRow:
    """What one source cluster's sleep saw."""

    source: str
    versions: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    missing: tuple[str, ...] = ()
    exec_error: Optional[str] = None
    """Set when curl could not be run at all; then nothing was measured."""

    @property
    def requests(self) -> int:
        return sum(self.versions.values()) + sum(self.errors.values())


def expected_versions(mesh: MeshConfig) -> dict[str, list[str]]:
    """Every helloworld version deployed in the mesh, and the clusters it runs on."""
    where: dict[str, list[str]] = {}
    for cluster in mesh.clusters:
        where.setdefault(cluster.helloworld_version, []).append(cluster.name)
    return dict(sorted(where.items()))


def measure_traffic(mesh: MeshConfig, exec_: Exec, requests: int, progress: Callable[[str], None]) -> list[TrafficRow]:
    expected = expected_versions(mesh)
    rows = []
    for cluster in mesh.clusters:
        progress(f"traffic: {requests} requests from {cluster.name}'s {SLEEP} to {HELLOWORLD_URL}")
        row = TrafficRow(cluster.name)
        for _ in range(requests):
            try:
                version, error = parse_response(exec_(cluster.name))
            except ExecError as failure:
                row.exec_error = str(failure)
                break
            if version:
                row.versions[version] += 1
            else:
                row.errors[error] += 1
        row.missing = tuple(v for v in expected if not row.versions[v])
        rows.append(row)
    return rows


def traffic_result(row: TrafficRow, mesh: MeshConfig) -> Result:
    """Passes when `row.source` saw every version deployed anywhere; errors alone do not fail."""
    item = f"{SLEEP} -> helloworld"
    if row.exec_error:
        return Result(TRAFFIC, row.source, item, FAIL, row.exec_error)
    where = expected_versions(mesh)
    seen = ", ".join(f"{v} x{n}" for v, n in sorted(row.versions.items())) or "no answer"
    problems = []
    for version in row.missing:
        remote = [c for c in where[version] if c != row.source]
        hint = (
            f"traffic from {row.source} does not reach {', '.join(remote)}: look at the gateway, "
            "remote-secret and cacerts checks above"
            if remote
            else f"the local helloworld-{version} does not answer"
        )
        problems.append(f"never answered by {version} ({', '.join(where[version])}): {hint}")
    if row.errors:
        error, count = row.errors.most_common(1)[0]
        failures = f"{sum(row.errors.values())} of {row.requests} failed, e.g. {count}x {error!r}"
        if problems:
            problems.append(failures)
        else:
            seen = f"{seen}; {failures}"
    return _result(TRAFFIC, row.source, item, problems, seen)
