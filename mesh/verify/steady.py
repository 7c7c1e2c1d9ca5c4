"""Steady traffic across the mesh for a while, every request recorded: what a user runs beside a
rotation (`mesh verify --traffic-for 60s`) and what the lab tests and the benchmark count.

From each cluster's sleep, two streams to helloworld, each one exec of the pod's own shell and curl
(the walk-through's sleep image has both), at a bounded rate and for a bounded time:

- `new`: one curl per request, so a new connection to its sidecar each time (a client that
  connects anew; the sidecar may still reuse its own mTLS connection to the answering side, unless
  a DestinationRule says otherwise: the lab tests ask a Service whose rule allows one request per
  connection, so that every request is a new mTLS handshake across the mesh);
- `kept`: one curl for the whole run, its requests one after another on one keep-alive connection
  (a long-lived client); curl reports when it had to connect again.

Every request becomes a `Sample`: when its answer arrived, which source and stream, the status or
error, the answering version and cluster, curl's own latency, and the connections it opened. The
exec's stdin stays open while the traffic runs; closing it stops both the loop and curl, so a
stopped or killed caller leaves nothing running in the pods.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Optional, Sequence

import kubernetes

from ..config import MeshConfig
from ..plan import samples
from .clients import pod_exec
from .results import HELLOWORLD_URL, SLEEP
from .traffic import (
    NO_ANSWER,
    TRAILER_FORMAT,
    UNKNOWN,
    ExecError,
    PodExec,
    Reply,
    TrafficRow,
    percentile,
    split_responses,
)

NEW, KEPT = "new", "kept"
END_LINE = "--end--"
_END = re.compile(rf"^{END_LINE}$\n?", re.MULTILINE)
STREAMS = (NEW, KEPT)


def stream_script(kind: str, rate: float, seconds: float, request_timeout: float, url: str = HELLOWORLD_URL) -> str:
    """The shell the sleep pod runs for one stream: bounded in count (rate x seconds) and time, and
    stopped as soon as its stdin closes."""
    count = max(int(rate * seconds), 1)
    limit = str(int(max(request_timeout, 1)))
    curl = f"curl -sS --max-time {limit} -w '{TRAILER_FORMAT}'"
    if kind == NEW:
        # On schedule whatever the answers take (a request that hangs does not hold the next
        # back), each curl's whole output written at once, then the END line.
        pause = f"{1 / rate:.3f}"
        request = f"( out=$({curl} {url} 2>&1); printf '%s\\n{END_LINE}\\n' \"$out\" ) &"
        body = f"i=0; while [ $i -lt {count} ]; do i=$((i+1)); {request} sleep {pause}; done; wait"
    else:
        # curl's URL globbing: `count` requests in sequence on one connection, --rate apart.
        rate_text = f"{max(int(round(rate * 60)), 1)}/m"
        body = f"exec {curl} --rate {rate_text} '{url}?request=[1-{count}]'"
    # In the foreground: a background job's stdin would be /dev/null. The loop's request in flight
    # ends by its --max-time.
    return f"( {body} ) & pid=$!; read -r _; kill $pid 2>/dev/null; wait"


@dataclass(frozen=True)
class Sample:
    at: float
    """Seconds from the start of the traffic to the answer (or the failure)."""
    source: str
    stream: str
    reply: Reply
    target: Optional[str] = None
    """The cluster whose pod answered; UNKNOWN for a pod of no cluster; None when it failed."""

    @property
    def failed(self) -> bool:
        return self.reply.error is not None

    @property
    def sent_at(self) -> float:
        """When it was sent: its answer's time less curl's own time for it."""
        return self.at - (self.reply.seconds or 0.0)


@dataclass(frozen=True)
class Mark:
    at: float
    label: str


class SteadyTraffic:
    """Start with `start()`, label what happens with `mark(label)`, end with `stop()`; then read
    `samples` and `marks`. Also a context manager."""

    def __init__(
        self,
        mesh: MeshConfig,
        apis: Mapping[str, kubernetes.client.ApiClient],
        instances: Callable[[], Mapping[str, str]],
        rate: float = 10.0,
        max_seconds: float = 600.0,
        request_timeout: float = 5.0,
        streams: Sequence[str] = STREAMS,
        urls: Optional[Mapping[str, str]] = None,
    ):
        self.mesh, self.apis, self.instances = mesh, apis, instances
        self.rate, self.max_seconds, self.request_timeout = rate, max_seconds, request_timeout
        self.streams = tuple(streams)
        self.urls = {kind: HELLOWORLD_URL for kind in STREAMS} | dict(urls or {})
        """What each stream asks: helloworld, unless told otherwise (a Service of the same pods)."""
        self.samples: list[Sample] = []
        self.marks: list[Mark] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._start = 0.0
        self._where: dict[str, str] = {}

    def now(self) -> float:
        return time.monotonic() - self._start

    def start(self) -> "SteadyTraffic":
        self._start = time.monotonic()
        self._where = dict(self.instances())
        self.mark("start")
        for cluster in self.mesh.clusters:
            for kind in self.streams:
                thread = threading.Thread(target=self._run, args=(cluster.name, kind), daemon=True)
                thread.start()
                self._threads.append(thread)
        return self

    def mark(self, label: str) -> None:
        with self._lock:
            self.marks.append(Mark(self.now(), label))

    def stop(self) -> None:
        self.mark("stop")
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.request_timeout + 10)

    def __enter__(self) -> "SteadyTraffic":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait_until_answered(self, timeout: float = 60.0) -> None:
        """Until every source has had an answer on each stream (the first requests go out once the
        execs are open)."""
        deadline = time.monotonic() + timeout
        wanted = {(c.name, kind) for c in self.mesh.clusters for kind in self.streams}
        while time.monotonic() < deadline:
            with self._lock:
                seen = {(s.source, s.stream) for s in self.samples if not s.failed}
            if wanted <= seen:
                return
            if self.errors:
                raise ExecError("; ".join(self.errors))
            time.sleep(0.2)
        raise ExecError(f"no answer within {timeout:.0f} s on: {sorted(wanted - seen)}")

    def _record(self, source: str, kind: str, reply: Reply) -> None:
        target = None
        if reply.error is None:
            if reply.instance not in self._where:
                try:
                    self._where.update(self.instances())
                except Exception:  # noqa: BLE001 - the answer stays of no known cluster
                    pass
            target = self._where.get(reply.instance, UNKNOWN)
        with self._lock:
            self.samples.append(Sample(self.now(), source, kind, reply, target))

    def _run(self, source: str, kind: str) -> None:
        core = kubernetes.client.CoreV1Api(self.apis[source])
        try:
            pod, container = PodExec(self.mesh, self.apis, self.request_timeout).target(source, core)
            client = pod_exec(
                self.apis[source],
                pod,
                samples.NAMESPACE,
                container=container,
                command=[
                    "sh",
                    "-c",
                    stream_script(kind, self.rate, self.max_seconds, self.request_timeout, self.urls[kind]),
                ],
                stderr=True,
                stdin=True,
                stdout=True,
                tty=False,
                _preload_content=False,
            )
        except Exception as error:  # noqa: BLE001 - said in the report, the other streams go on
            with self._lock:
                self.errors.append(f"{source} {kind}: {error}")
            return
        pending, stderr = "", ""
        try:
            while client.is_open():
                client.update(timeout=0.2)
                stderr += client.read_stderr() or ""
                pending += client.read_stdout() or ""
                replies, pending = split_responses(pending, _END if kind == NEW else None)
                for reply in replies:
                    if reply.error == NO_ANSWER and stderr.strip():
                        # No HTTP answer: curl's own message came on stderr.
                        reply = Reply(error=stderr.strip().splitlines()[-1], connects=reply.connects)
                    stderr = ""
                    self._record(source, kind, reply)
                if self._stop.is_set():
                    break
        except Exception as error:  # noqa: BLE001 - the stream ends here; said in the report
            with self._lock:
                self.errors.append(f"{source} {kind}: the exec stream broke after {self.now():.1f} s: {error}")
        finally:
            client.close()


def between(samples: Iterable[Sample], start: float, end: float) -> list[Sample]:
    """The requests sent from `start` to `end` (a phase owns what was sent in it)."""
    return [s for s in samples if start <= s.sent_at < end]


def phases(traffic: SteadyTraffic) -> list[tuple[str, float, float]]:
    """(label, start, end) from one mark to the next."""
    marks = traffic.marks
    return [(m.label, m.at, marks[i + 1].at if i + 1 < len(marks) else float("inf")) for i, m in enumerate(marks)]


@dataclass
class Tally:
    """Requests of one source (and stream) over a stretch of time."""

    sent: int = 0
    failed: int = 0
    errors: Counter = field(default_factory=Counter)
    versions: Counter = field(default_factory=Counter)
    answered_by: Counter = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)
    connects: int = 0

    @classmethod
    def of(cls, samples: Iterable[Sample]) -> "Tally":
        tally = cls()
        for s in samples:
            tally.sent += 1
            tally.connects += s.reply.connects or 0
            if s.failed:
                tally.failed += 1
                tally.errors[s.reply.error] += 1
                continue
            tally.versions[s.reply.version] += 1
            tally.answered_by[s.target] += 1
            if s.reply.seconds is not None:
                tally.seconds.append(s.reply.seconds)
        return tally

    def latency_ms(self, share: float) -> Optional[float]:
        return percentile(self.seconds, share) * 1000 if self.seconds else None

    @classmethod
    def merged(cls, parts: Iterable["Tally"]) -> "Tally":
        total = cls()
        for part in parts:
            total.sent += part.sent
            total.failed += part.failed
            total.errors += part.errors
            total.versions += part.versions
            total.answered_by += part.answered_by
            total.seconds += part.seconds
            total.connects += part.connects
        return total

    def to_dict(self) -> dict:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "errors": dict(self.errors),
            "versions": dict(sorted(self.versions.items())),
            "answeredBy": dict(sorted(self.answered_by.items())),
            "p50Ms": self.latency_ms(0.5),
            "p99Ms": self.latency_ms(0.99),
            "connects": self.connects,
        }


def per_stream(traffic: SteadyTraffic, samples: Sequence[Sample]) -> dict[tuple[str, str], Tally]:
    """(source, stream) -> what it saw of `samples`, for every source and stream of the traffic."""
    return {
        (c.name, kind): Tally.of(s for s in samples if s.source == c.name and s.stream == kind)
        for c in traffic.mesh.clusters
        for kind in traffic.streams
    }


def by_phase(traffic: SteadyTraffic) -> dict[str, dict[tuple[str, str], Tally]]:
    """label -> (source, stream) -> what it saw in that phase."""
    return {
        label: per_stream(traffic, between(traffic.samples, start, end))
        for label, start, end in phases(traffic)
        if label != "stop"
    }


def failures_by_phase(traffic: SteadyTraffic) -> dict[str, int]:
    """label -> failed requests in that phase, for the phases that lost any."""
    lost = {label: sum(t.failed for t in tallies.values()) for label, tallies in by_phase(traffic).items()}
    return {label: n for label, n in lost.items() if n}


def recovery(
    traffic: SteadyTraffic, since: float, until: float = float("inf"), sources: Optional[Sequence[str]] = None
) -> Optional[float]:
    """Seconds from `since` to the last failed request before `until` (from `sources`, every
    source by default): 0 when none failed, None when the last request of the window failed too
    (not recovered yet)."""
    window = sorted(
        (s for s in between(traffic.samples, since, until) if sources is None or s.source in sources),
        key=lambda s: s.sent_at,
    )
    failed = [s for s in window if s.failed]
    if not failed:
        return 0.0
    if window[-1].failed:
        return None
    return failed[-1].sent_at - since


def rows_of(traffic: SteadyTraffic) -> list[TrafficRow]:
    """What each source saw over the whole traffic, both streams, in the form of the one-shot
    traffic check (per answering cluster, failures), for its results and its table."""
    targets = [c.name for c in traffic.mesh.clusters]
    rows = []
    for cluster in traffic.mesh.clusters:
        row = TrafficRow(cluster.name)
        for s in traffic.samples:
            if s.source != cluster.name:
                continue
            if s.failed:
                row.errors.append(s.reply.error)
            else:
                row.replies.setdefault(s.target, []).append(s.reply)
        # A stream that could not start, or broke, fails its source even when the other one ran: the
        # traffic asked for was not all measured.
        stream_errors = [e for e in traffic.errors if e.startswith(f"{cluster.name} ")]
        if stream_errors:
            row.exec_error = "; ".join(stream_errors)
        row.missing = tuple(t for t in targets if t not in row.replies)
        rows.append(row)
    return rows


def hold(
    mesh: MeshConfig,
    apis: Mapping[str, kubernetes.client.ApiClient],
    instances: Callable[[], Mapping[str, str]],
    seconds: float,
    rate: float,
    request_timeout: float,
    progress: Callable[[str], None] = lambda line: None,
) -> SteadyTraffic:
    """`seconds` of steady traffic from every cluster's sleep (`mesh verify --traffic-for`)."""
    traffic = SteadyTraffic(mesh, apis, instances, rate=rate, max_seconds=seconds + 30, request_timeout=request_timeout)
    progress(
        f"traffic: holding {seconds:.0f} s from each cluster's {SLEEP} to {HELLOWORLD_URL}, "
        f"{rate:g} requests/s on a new connection each and {rate:g}/s on one kept-alive connection"
    )
    with traffic:
        try:
            traffic.wait_until_answered(timeout=request_timeout * 2 + 30)
        except ExecError as error:  # measured all the same: the sources that cannot send show it
            progress(f"traffic: not every stream answers yet: {error}")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(min(10.0, max(end - time.monotonic(), 0)))
            with traffic._lock:
                sent, failed = len(traffic.samples), sum(s.failed for s in traffic.samples)
            progress(f"traffic: {traffic.now():.0f} s, {sent} requests, {failed} failed")
    return traffic


def figures(traffic: SteadyTraffic) -> dict:
    """The JSON report's figures: how long and how fast, and per source and stream what it saw."""
    streams: dict[str, dict] = {}
    for (source, kind), tally in per_stream(traffic, traffic.samples).items():
        streams.setdefault(source, {})[kind] = tally.to_dict()
    return {
        "seconds": round(traffic.marks[-1].at if traffic.marks else traffic.now(), 1),
        "ratePerStream": traffic.rate,
        "streams": streams,
        **({"streamErrors": traffic.errors} if traffic.errors else {}),
    }
