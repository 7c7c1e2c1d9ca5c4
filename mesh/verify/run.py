"""The whole run: every check on every cluster, in Sail's e2e order, waiting at most --timeout; the report."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import kubernetes
from cryptography import x509

from ..config import ClusterConfig, MeshConfig
from ..plan.remote_secrets import remote_secret_pairs
from .clients import check_api_server
from .control_plane import check_control_plane, check_gateway, check_istiod
from .istiod import check_istiod_peers, check_remote_endpoints, nodeless_clusters
from .remote_secrets import check_remote_secret
from .results import (
    CACERTS,
    CONTROL_PLANE,
    FAIL,
    GATEWAY,
    ISSUANCE,
    HELLOWORLD_URL,
    ISTIOD,
    ISTIOD_PEERS,
    NO_NODE,
    PASS,
    REMOTE_ENDPOINTS,
    REMOTE_SECRETS,
    SAMPLE_PODS,
    SKIP,
    TRAFFIC,
    Result,
    api_error,
)
from .issuance import NOT_CERT_MANAGER, check_issuance
from .trust import check_cacerts, read_cacerts
from . import steady
from .traffic import Exec, TrafficRow, expected_versions, helloworld_pods, measure_traffic, traffic_results
from .workloads import check_sample_pods

# --- the whole run ------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    requests: int = 10
    """Requests from each cluster's sleep, at least (more while a cluster has not answered yet)."""
    tolerate: int = 0
    """Failed requests per source cluster that still pass."""
    timeout: float = 120.0
    """How long, in all, to wait for things that are still settling."""
    request_timeout: float = 15.0
    """How long one API call (or one curl through exec) may take."""
    mesh_roots: tuple[x509.Certificate, ...] = ()
    """The roots the mesh should trust (`pulumi stack output rootCertificate`); () skips that check."""
    interval: float = 2.0
    traffic_for: Optional[float] = None
    """Hold steady traffic this many seconds instead of `requests` (mesh verify --traffic-for)."""
    rate: float = 10.0
    """With traffic_for: requests per second per source, on each of its two streams."""


@dataclass
class Report:
    results: list[Result]
    traffic: list[TrafficRow]
    requests: int
    expected_versions: dict[str, list[str]]
    held: Optional[dict[str, Any]] = None
    """With --traffic-for: the steady traffic's figures per source and stream."""

    @property
    def ok(self) -> bool:
        return not any(r.failed for r in self.results)

    def counts(self) -> Counter:
        return Counter(r.status for r in self.results)

    def summary(self) -> str:
        counts = self.counts()
        verdict = "the mesh works" if self.ok else "the mesh is NOT working"
        return f"{verdict}: {counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "summary": self.summary(),
            "results": [r.__dict__ for r in self.results],
            "traffic": {
                "url": HELLOWORLD_URL,
                "requests": self.requests,
                "expectedVersions": self.expected_versions,
                "sources": {row.source: row.to_dict() for row in self.traffic},
                **({"held": self.held} if self.held else {}),
            },
        }


def _guarded(check: str, cluster: str, probe: Callable[[], list[Result]]) -> list[Result]:
    """A probe's results, or one failure that says which API call failed and why."""
    try:
        return probe()
    except Exception as error:  # noqa: BLE001 - one broken cluster must not hide the others
        return [Result(check, cluster, "-", FAIL, api_error(error))]


def _wait(
    what: str,
    probe: Callable[[], list[Result]],
    deadline: float,
    settings: Settings,
    progress: Callable[[str], None],
) -> list[Result]:
    """Probe until nothing fails or the deadline passes; say what is awaited when that changes,
    and every ten seconds otherwise."""
    said, said_at = "", 0.0
    while True:
        results = probe()
        failing = [r for r in results if r.failed and not r.final]
        now = time.monotonic()
        if not failing or now >= deadline:
            return results
        waiting_for = "; ".join(f"{r.cluster} {r.item}: {r.detail}" for r in failing[:2])
        if waiting_for != said or now - said_at >= 10:
            progress(f"waiting for {what}, {deadline - now:.0f}s left of --timeout: {waiting_for}")
            said, said_at = waiting_for, now
        time.sleep(min(settings.interval, deadline - now))


def verify(
    mesh: MeshConfig,
    apis: Mapping[str, kubernetes.client.ApiClient],
    exec_: Exec,
    settings: Settings = Settings(),
    progress: Callable[[str], None] = lambda line: None,
) -> Report:
    """Run every check on every cluster, in Sail's e2e order, waiting at most `settings.timeout`."""
    deadline = time.monotonic() + settings.timeout

    progress("connecting to " + ", ".join(c.name for c in mesh.clusters))
    results = [check_api_server(apis[c.name], c) for c in mesh.clusters]
    down = [r.cluster for r in results if r.failed]
    up = [c for c in mesh.clusters if c.name not in down]

    def per_cluster(check: str, probe: Callable[[ClusterConfig, kubernetes.client.ApiClient], list[Result]]):
        return lambda: [r for c in up for r in _guarded(check, c.name, lambda: probe(c, apis[c.name]))]

    core = kubernetes.client.CoreV1Api
    apps = kubernetes.client.AppsV1Api
    custom = kubernetes.client.CustomObjectsApi
    nodeless = nodeless_clusters(apis, up)
    waited = [
        (CONTROL_PLANE, lambda c, a: check_control_plane(custom(a), mesh, c)),
        (ISTIOD, lambda c, a: check_istiod(custom(a), apps(a), mesh, c, c.name in nodeless)),
        (GATEWAY, lambda c, a: check_gateway(core(a), apps(a), c, c.name in nodeless)),
    ]
    if mesh.certificates.backend == "cert-manager":
        waited.append((ISSUANCE, lambda c, a: check_issuance(custom(a), mesh, c)))
    for check, probe in waited:
        progress(f"checking {check}")
        results += _wait(check, per_cluster(check, probe), deadline, settings, progress)
    if mesh.certificates.backend != "cert-manager":
        results.append(NOT_CERT_MANAGER)

    progress(f"checking {CACERTS}")
    bundles, errors = {}, []
    for cluster in up:
        try:
            bundles[cluster.name] = read_cacerts(core(apis[cluster.name]))
        except Exception as error:  # noqa: BLE001
            errors.append(Result(CACERTS, cluster.name, "Secret cacerts", FAIL, api_error(error)))
    results += check_cacerts(bundles, settings.mesh_roots) + errors

    progress(f"checking {REMOTE_SECRETS}")
    # A holder's secret is checked even when its source is down: the access check says so.
    for source, holder in remote_secret_pairs(mesh.clusters):
        if holder.name in down:
            continue
        results += _guarded(
            REMOTE_SECRETS,
            holder.name,
            lambda: [check_remote_secret(core(apis[holder.name]), holder, source, settings.request_timeout)],
        )

    progress(f"checking {ISTIOD_PEERS}")
    remote_problems = {(r.cluster, r.item): r.detail for r in results if r.check == REMOTE_SECRETS and r.failed}
    results += _wait(
        ISTIOD_PEERS,
        per_cluster(
            ISTIOD_PEERS,
            lambda c, a: check_istiod_peers(
                a,
                mesh,
                c,
                {item: d for (holder, item), d in remote_problems.items() if holder == c.name},
                settings.request_timeout,
            ),
        ),
        deadline,
        settings,
        progress,
    )

    rows: list[TrafficRow] = []
    held_figures: Optional[dict[str, Any]] = None
    if not mesh.sample_apps:
        for check in (SAMPLE_PODS, REMOTE_ENDPOINTS, TRAFFIC):
            results.append(Result(check, "-", "-", SKIP, "mesh:sampleApps is false: no sample apps deployed"))
    else:
        progress(f"checking {SAMPLE_PODS}")
        results += _wait(
            SAMPLE_PODS,
            per_cluster(SAMPLE_PODS, lambda c, a: check_sample_pods(core(a), c, c.name in nodeless)),
            deadline,
            settings,
            progress,
        )
        progress(f"checking {REMOTE_ENDPOINTS}")
        results += _wait(
            REMOTE_ENDPOINTS,
            per_cluster(
                REMOTE_ENDPOINTS, lambda c, a: check_remote_endpoints(apis, mesh, c, nodeless, settings.request_timeout)
            ),
            deadline,
            settings,
            progress,
        )
        if down:
            results.append(Result(TRAFFIC, "-", "-", SKIP, "not measured: " + ", ".join(down) + " unreachable"))
        else:
            cores = {c.name: core(apis[c.name]) for c in mesh.clusters}
            try:
                known = helloworld_pods(cores)
            except Exception as error:  # noqa: BLE001 - whatever the API says, the report goes on
                results.append(
                    Result(TRAFFIC, "-", "helloworld pods", FAIL, f"listing them failed: {api_error(error)}")
                )
            else:

                def instances() -> dict[str, str]:
                    try:  # a re-read that fails keeps what is known; the answer's pod stays unknown
                        known.update(helloworld_pods(cores))
                    except Exception:  # noqa: BLE001
                        pass
                    return known

                if settings.traffic_for:
                    held = steady.hold(
                        mesh, apis, instances, settings.traffic_for, settings.rate, settings.request_timeout, progress
                    )
                    rows, held_figures = steady.rows_of(held), steady.figures(held)
                else:
                    rows = measure_traffic(mesh, exec_, instances, settings.requests, progress, deadline)
                for row in rows:
                    if row.exec_error and row.source in nodeless:
                        row.exec_error = f"{row.exec_error}; {NO_NODE}"
                results += [r for row in rows for r in traffic_results(row, settings.tolerate)]
    return Report(results, rows, settings.requests, expected_versions(mesh), held_figures)
