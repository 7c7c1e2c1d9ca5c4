"""Every "without downtime" claim of ours as requests counted under steady traffic, on one
two-cluster lab (the lab tests assert the same: tests/integration/test_lab_root_rotation.py,
test_lab_production.py, test_lab_disruptions.py):

- per operation (the four `up`s of a root rotation, a reader-token rotation, an intermediate
  renewal by `up`, istiod restarted, an east-west gateway pod restarted, a gateway rollout):
  requests sent and failed from both sides, p50/p99 latency during it beside the same traffic's
  before it (the floor: the mesh with nothing happening), and its wall time. The traffic: from each
  cluster's sleep, 10 requests/s each a new mTLS handshake (lab/traffic.py) and 10/s on one
  kept-alive connection;
- failover: west's gateway made unreachable for 15 s, the time until east's requests succeed
  again, with `mesh:failover` on (spread) beside Istio's defaults (off, the floor), and the
  requests east lost and sent meanwhile.
"""

from __future__ import annotations

import pathlib
import time
from typing import Callable, Optional

import kubernetes

from lab import Lab
from lab.stack import mesh_config, open_stack, remove_stack, write_config
from lab.traffic import FRESH_URL, fresh_handshakes
from mesh import config as mesh_settings
from mesh.verify import steady, traffic
from mesh.verify.workloads import pod_ready

from .report import Row

CLUSTERS = ["east", "west"]
SETTLE_SECONDS = 10
OUTAGE_SECONDS = 15


class Mesh:
    def __init__(self, lab: Lab, workdir: pathlib.Path):
        self.lab = lab
        self.config = mesh_config(lab.clusters, lab.kubeconfig_path)
        self.stack = open_stack("bench-downtime", self.config, workdir / "state-downtime")
        self.outputs: dict = {}

    def up(self, **changes) -> None:
        self.config = dict(self.config, **changes)
        write_config(self.stack.name, self.config)
        result = self.stack.up(color="never")
        self.outputs = {k: v.value for k, v in result.outputs.items()}

    def client(self, cluster: str) -> kubernetes.client.ApiClient:
        return kubernetes.config.new_client_from_config(str(self.lab.kubeconfig_path), context=cluster)


def _traffic(mesh: Mesh, urls: Optional[dict]) -> steady.SteadyTraffic:
    settings = mesh_settings.parse(mesh.config)
    apis = {name: mesh.client(name) for name in CLUSTERS}
    cores = {name: kubernetes.client.CoreV1Api(api) for name, api in apis.items()}
    run = steady.SteadyTraffic(settings, apis, lambda: traffic.helloworld_pods(cores), max_seconds=1200, urls=urls)
    run.start()
    run.wait_until_answered(timeout=60)
    return run


def _ready(mesh: Mesh, cluster: str, namespace: str, selector: str, not_named: set[str]) -> bool:
    pods = kubernetes.client.CoreV1Api(mesh.client(cluster)).list_namespaced_pod(namespace, label_selector=selector)
    return any(
        p.metadata.name not in not_named and not p.metadata.deletion_timestamp and pod_ready(p) for p in pods.items
    )


def _until(probe: Callable[[], bool], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError("the operation did not finish in time")
        time.sleep(0.5)


def _names(mesh: Mesh, cluster: str, namespace: str, selector: str) -> set[str]:
    core = kubernetes.client.CoreV1Api(mesh.client(cluster))
    return {p.metadata.name for p in core.list_namespaced_pod(namespace, label_selector=selector).items}


def _restart_pod(mesh: Mesh, cluster: str, selector: str) -> None:
    old = _names(mesh, cluster, "istio-system", selector)
    core = kubernetes.client.CoreV1Api(mesh.client(cluster))
    for name in old:
        core.delete_namespaced_pod(name, "istio-system")
    _until(lambda: _ready(mesh, cluster, "istio-system", selector, old))


def _rollout(mesh: Mesh) -> None:
    selector = "app=istio-eastwestgateway"
    old = _names(mesh, "west", "istio-system", selector)
    patch = {"spec": {"template": {"metadata": {"annotations": {"bench/restartedAt": str(time.time())}}}}}
    kubernetes.client.AppsV1Api(mesh.client("west")).patch_namespaced_deployment(
        "istio-eastwestgateway", "istio-system", patch
    )
    _until(
        lambda: (
            _ready(mesh, "west", "istio-system", selector, old)
            and not old & _names(mesh, "west", "istio-system", selector)
        )
    )


def _rotation(phase: Optional[str]) -> dict:
    certificates = {"keyAlgorithm": "ECDSA", "rootGeneration": 1, "rootRotationWaitHours": 0}
    if phase:
        certificates["rootRotation"] = phase
    return {"certificates": certificates}


def operations(mesh: Mesh) -> list[tuple[str, Callable[[], None]]]:
    return [
        ("root rotation, up 1: trust", lambda: mesh.up(**_rotation("trust"))),
        ("root rotation, up 2: sign", lambda: mesh.up(**_rotation("sign"))),
        ("root rotation, up 3: retire", lambda: mesh.up(**_rotation("retire"))),
        ("root rotation, up 4: end", lambda: mesh.up(**_rotation(None))),
        ("reader-token rotation", lambda: mesh.up(readerTokenRotation="2")),
        (
            "intermediate renewal by up",
            lambda: mesh.up(
                certificates=dict(
                    mesh.config["certificates"], intermediateValidityHours=87600, intermediateEarlyRenewalHours=87600
                )
            ),
        ),
        ("istiod restarted (east)", lambda: _restart_pod(mesh, "east", "app=istiod")),
        ("east-west gateway pod restarted (west)", lambda: _restart_pod(mesh, "west", "app=istio-eastwestgateway")),
        ("gateway Deployment rollout (west)", lambda: _rollout(mesh)),
    ]


def _ms(tally: steady.Tally, share: float) -> float:
    return tally.latency_ms(share) or 0.0


def _all(phase: dict) -> steady.Tally:
    return steady.Tally.merged(phase.values())


def _cut_gateway(mesh: Mesh, run: steady.SteadyTraffic, label: str) -> tuple[Optional[float], steady.Tally]:
    address = mesh.outputs["clusters"]["west"]["gatewayAddress"]
    run.mark(label)
    since = run.now()
    mesh.lab.network.blackhole(address)
    try:
        time.sleep(OUTAGE_SECONDS)
    finally:
        mesh.lab.network.restore(address)
    run.mark(f"{label}: back")
    time.sleep(SETTLE_SECONDS)
    run.mark(f"past {label}")
    end = run.marks[-1].at
    phases = steady.by_phase(run)
    east = steady.Tally.merged(
        t for phase in (label, f"{label}: back") for (source, _), t in phases[phase].items() if source == "east"
    )
    return steady.recovery(run, since, end, ["east"]), east


def measure(workdir: pathlib.Path) -> list[Row]:
    rows: list[Row] = []
    with Lab(workdir / "lab-downtime", clusters=CLUSTERS) as lab:
        mesh = Mesh(lab, workdir)
        try:
            mesh.up()
            fresh_handshakes(mesh.client(name) for name in CLUSTERS)
            run = _traffic(mesh, {steady.NEW: FRESH_URL})
            try:
                run.mark("before")
                time.sleep(SETTLE_SECONDS)
                for name, operation in operations(mesh):
                    run.mark(name)
                    started = time.monotonic()
                    operation()
                    wall = time.monotonic() - started
                    run.mark(f"after {name}")
                    time.sleep(SETTLE_SECONDS)
                    phases = steady.by_phase(run)
                    before = _all(phases["before"])
                    during = steady.Tally.merged([_all(phases[name]), _all(phases[f"after {name}"])])
                    note = (
                        f"{during.sent} requests from both sides, wall {wall:.1f} s; p50 {_ms(during, 0.5):.1f} ms "
                        f"vs {_ms(before, 0.5):.1f} ms before"
                    )
                    rows.append(Row(f"{name}: failed requests", during.failed, 0, "req", note=note))
                    rows.append(Row(f"{name}: p99 latency", _ms(during, 0.99), _ms(before, 0.99), "ms"))
            finally:
                run.stop()
            # Failover: both streams to helloworld itself, the Service mesh:failover names.
            run = _traffic(mesh, None)
            try:
                off, off_east = _cut_gateway(mesh, run, "gateway unreachable, failover off")
                mesh.up(failover={"services": ["helloworld.sample"]})
                time.sleep(5)
                on, on_east = _cut_gateway(mesh, run, "gateway unreachable, failover on")
            finally:
                run.stop()
            rows.append(
                Row(
                    "failover: east's recovery from west's gateway unreachable (15 s), failover on vs off",
                    on if on is not None else float("nan"),
                    off,
                    "s",
                    note=f"east lost {on_east.failed} of {on_east.sent} sent (off: {off_east.failed} of {off_east.sent})",
                )
            )
        finally:
            mesh.stack.destroy(exclude_protected=True, color="never")
            remove_stack(mesh.stack)
    return rows
