"""Traffic: the article's curl from each cluster's sleep to helloworld, every answer mapped to the
cluster whose pod gave it, reported per ordered pair of clusters (answers, versions, latency p50
and p99) and per source (requests, failures)."""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException
from websocket import WebSocketException

from ..config import ClusterConfig, MeshConfig
from ..plan import samples
from .clients import pod_exec
from .results import _HELLO, FAIL, HELLOWORLD_URL, SLEEP, TRAFFIC, Result, _result, api_error
from .workloads import ready_pods, sample_deployments

Exec = Callable[[str], str]
"""Runs curl_command once in the sleep pod of the named cluster; returns what it printed."""

Instances = Callable[[], Mapping[str, str]]
"""helloworld pod name -> the cluster it runs in, read afresh at each call."""

# curl's own timing, after the body: the status code, the request's total seconds, and the
# connections curl opened for it (0 on a kept-alive connection).
TRAILER_FORMAT = r"\n%{http_code} %{time_total} %{num_connects}\n"
_TRAILER = re.compile(r"^(?P<code>\d{3}) (?P<seconds>\d+(?:\.\d+)?)(?: (?P<connects>\d+))?$", re.MULTILINE)
UNKNOWN = "(no cluster)"
"""Where an answer came from when no cluster has a helloworld pod of that name."""
MORE = 4
"""Sources send up to MORE times --requests while a cluster has not answered them yet: with three
clusters, ten randomly balanced requests miss one of them 5% of the time."""


class ExecError(Exception):
    """The curl could not be run at all (no pod, exec refused): further tries are pointless."""


def curl_command(timeout: float) -> list[str]:
    """The article's curl, with a deadline (a blackholed gateway must not leave curl waiting
    longer than we do) and curl's own timing of the request written after the body."""
    return ["curl", "-sS", "--max-time", str(int(max(timeout, 1))), "-w", TRAILER_FORMAT, HELLOWORLD_URL]


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

    def target(self, cluster_name: str, core) -> tuple[str, str]:
        """(pod, container) to exec into: a Ready sleep pod of the cluster."""
        cluster = self.clusters[cluster_name]
        container = sample_deployments(cluster)[SLEEP]["spec"]["template"]["spec"]["containers"][0]["name"]
        return self._pod(core, cluster), container

    def __call__(self, cluster_name: str) -> str:
        core = kubernetes.client.CoreV1Api(self.apis[cluster_name])
        try:
            pod, container = self.target(cluster_name, core)
            return pod_exec(
                self.apis[cluster_name],
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
            self._pods.pop(cluster_name, None)  # the pod may be gone: look for a Ready one next time
            raise ExecError(f"exec into {samples.NAMESPACE}/{SLEEP} failed: {api_error(error)}") from error


@dataclass(frozen=True)
class Reply:
    version: Optional[str] = None
    instance: Optional[str] = None
    seconds: Optional[float] = None
    error: Optional[str] = None
    connects: Optional[int] = None


def parse_response(output: str) -> Reply:
    """An answer (version, the answering pod, curl's time), or the error: curl's own message, or
    the HTTP status and body Envoy or the server gave instead of helloworld's answer."""
    trailer = None
    for trailer in _TRAILER.finditer(output):
        pass
    # The exec stream joins stdout and stderr as they arrive: curl's message may follow the trailer.
    body = output[: trailer.start()] + output[trailer.end() :] if trailer else output
    code = trailer["code"] if trailer else None
    connects = int(trailer["connects"]) if trailer and trailer["connects"] else None
    match = _HELLO.search(body)
    seconds = float(trailer["seconds"]) if trailer else None
    if match and code in (None, "200"):
        return Reply(match["version"], match["instance"], seconds, connects=connects)
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    first = lines[0] if lines else NO_ANSWER
    error = f"HTTP {code}: {first}" if code not in (None, "000") else first
    return Reply(error=error, connects=connects, seconds=seconds)


NO_ANSWER = "empty response"


def split_responses(text: str, end: Optional[re.Pattern] = None) -> tuple[list[Reply], str]:
    """The replies of every whole response in `text`, and the rest still to come. Responses end
    with curl's trailer (one curl's output of one request after another, stdout only), or with
    the line `end` matches (each a whole curl output, stderr included, written at once)."""
    replies, start = [], 0
    for found in (end or _TRAILER).finditer(text):
        replies.append(parse_response(text[start : found.start() if end else found.end()]))
        start = found.end()
    return replies, text[start:]


def percentile(values: list[float], share: float) -> float:
    """Nearest rank: the smallest value at or above `share` of the values."""
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


@dataclass
class TrafficRow:
    """What one source cluster's sleep saw."""

    source: str
    replies: dict[str, list[Reply]] = field(default_factory=dict)
    """Answers by the cluster whose pod answered (UNKNOWN when none has that pod)."""
    errors: list[str] = field(default_factory=list)
    missing: tuple[str, ...] = ()
    """Clusters running helloworld that never answered this source."""
    exec_error: Optional[str] = None
    """Set when curl could not be run at all; then nothing was measured."""

    @property
    def answered(self) -> int:
        return sum(len(replies) for replies in self.replies.values())

    @property
    def requests(self) -> int:
        return self.answered + len(self.errors)

    @property
    def versions(self) -> Counter:
        return Counter(r.version for replies in self.replies.values() for r in replies)

    def targets(self) -> list[str]:
        """The clusters this source heard from or should have, pods of no cluster last."""
        return sorted(set(self.replies) | set(self.missing), key=lambda t: (t == UNKNOWN, t))

    def versions_text(self, cluster: str) -> str:
        counts = Counter(r.version for r in self.replies.get(cluster, []))
        return ", ".join(f"{v} x{n}" for v, n in sorted(counts.items()))

    def latency_ms(self, cluster: str, share: float) -> Optional[float]:
        seconds = [r.seconds for r in self.replies.get(cluster, []) if r.seconds is not None]
        return percentile(seconds, share) * 1000 if seconds else None

    def to_dict(self) -> dict:
        return {
            "requests": self.requests,
            "failed": len(self.errors),
            "firstError": self.errors[0] if self.errors else None,
            "errors": dict(Counter(self.errors)),
            "versions": dict(self.versions),
            "missing": list(self.missing),
            "answeredBy": {
                cluster: {
                    "answers": len(replies),
                    "versions": dict(Counter(r.version for r in replies)),
                    "p50Ms": self.latency_ms(cluster, 0.5),
                    "p99Ms": self.latency_ms(cluster, 0.99),
                }
                for cluster, replies in sorted(self.replies.items())
            },
            **({"execError": self.exec_error} if self.exec_error else {}),
        }


def expected_versions(mesh: MeshConfig) -> dict[str, list[str]]:
    """Every helloworld version deployed in the mesh, and the clusters it runs on."""
    where: dict[str, list[str]] = {}
    for cluster in mesh.clusters:
        where.setdefault(cluster.helloworld_version, []).append(cluster.name)
    return dict(sorted(where.items()))


def helloworld_pods(cores: Mapping[str, object]) -> dict[str, str]:
    """helloworld pod name -> cluster, from each cluster's API (`cores`: CoreV1Api by cluster)."""
    found = {}
    for cluster, core in cores.items():
        pods = core.list_namespaced_pod(samples.NAMESPACE, label_selector="app=helloworld").items
        found.update({pod.metadata.name: cluster for pod in pods})
    return found


def measure_traffic(
    mesh: MeshConfig,
    exec_: Exec,
    instances: Instances,
    requests: int,
    progress: Callable[[str], None],
    deadline: Optional[float] = None,
) -> list[TrafficRow]:
    """From each cluster's sleep: `requests`, then more (up to MORE times, until `deadline`, a
    time.monotonic() value) while a cluster has not answered. An exec that fails after the first
    request counts as a failed request (three in a row end the source)."""
    targets = [c.name for c in mesh.clusters]  # every cluster runs a helloworld version
    where = dict(instances())
    rows = []
    for cluster in mesh.clusters:
        progress(f"traffic: {requests} requests or more from {cluster.name}'s {SLEEP} to {HELLOWORLD_URL}")
        row, exec_failures = TrafficRow(cluster.name), 0
        while row.requests < requests or (
            row.requests < MORE * requests
            and any(t not in row.replies for t in targets)
            and (deadline is None or time.monotonic() < deadline)
        ):
            try:
                reply = parse_response(exec_(cluster.name))
            except ExecError as failure:
                exec_failures += 1
                if not row.requests or exec_failures == 3:
                    row.exec_error = str(failure)
                    break
                row.errors.append(str(failure))
                continue
            exec_failures = 0
            if reply.error:
                row.errors.append(reply.error)
                continue
            if reply.instance not in where:  # a pod made since: read the pods again, keeping the known
                where.update(instances())
            row.replies.setdefault(where.get(reply.instance, UNKNOWN), []).append(reply)
        row.missing = tuple(t for t in targets if t not in row.replies)
        rows.append(row)
    return rows


def _ms(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def pair_item(target: str) -> str:
    return f"{SLEEP} -> helloworld of {target}"


SOURCE_ITEM = f"{SLEEP} -> helloworld"


def traffic_results(row: TrafficRow, tolerate: int = 0) -> list[Result]:
    """One result per cluster the source should reach (answered at least once), one for answers
    from pods of no cluster of the mesh (a stale endpoint, a cluster outside the stack), and one
    for the source: failed requests beyond `tolerate` fail it, naming how many and the first."""
    if row.exec_error and not row.requests:
        return [Result(TRAFFIC, row.source, SOURCE_ITEM, FAIL, row.exec_error)]
    results = []
    for target in row.targets():
        replies = row.replies.get(target, [])
        if target == UNKNOWN:
            pods = ", ".join(sorted({r.instance for r in replies}))
            problems = [f"{len(replies)} answers from pods no cluster of the mesh runs ({pods}): a stale endpoint, "
                        "or a cluster outside this stack"]  # fmt: skip
        elif not replies:
            hint = (
                f"traffic from {row.source} does not reach {target}: look at the gateway, remote-secret and "
                "cacerts checks above"
                if target != row.source
                else f"{target}'s own helloworld does not answer"
            )
            problems = [f"no answer in {row.requests} requests: {hint}"]
        else:
            problems = []
        latency = f"p50 {_ms(row.latency_ms(target, 0.5))}, p99 {_ms(row.latency_ms(target, 0.99))}"
        results.append(
            _result(TRAFFIC, row.source, pair_item(target), problems, f"{row.versions_text(target)}; {latency}")
        )
    failed = len(row.errors)
    summary = f"{row.requests} requests, {failed} failed"
    if failed:
        error, count = Counter(row.errors).most_common(1)[0]
        summary += f", first {row.errors[0]!r}" + (f", most often {count}x {error!r}" if error != row.errors[0] else "")
    problems = [summary] if failed > tolerate or row.exec_error else []
    if row.exec_error:
        problems.append(f"then stopped: {row.exec_error}")
    if failed and not problems:
        summary += f" (tolerated: --tolerate {tolerate})"
    results.append(_result(TRAFFIC, row.source, SOURCE_ITEM, problems, summary))
    return results
