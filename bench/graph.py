"""The program's own cost of building the mesh's resource graph, by number of clusters, against
the Pulumi SDK's cost of registering as many resources (the floor).

Runs against the Pulumi mocks of the tests (no engine, no cluster): config checks, planning and
registering every resource. Remote secrets grow as N(N-1), so this is where a large mesh shows
it. Each figure comes from a fresh process; time is taken without tracemalloc (which slows
Python several-fold), peak memory in a separate pass with it.

    .venv/bin/python -m bench.graph [N ...]
"""

from __future__ import annotations

import datetime
import json
import math
import pathlib
import subprocess
import sys
import tempfile
import time
import tracemalloc
from typing import Mapping, Optional

from mesh import config, program
from mesh.plan.mesh import plan_mesh

from .report import Row, render

GRAPH_TARGET_SECONDS = 10.0  # for 32 clusters (issue 11)


def raw_config(n: int, kubeconfig: pathlib.Path, servers: Optional[Mapping[str, str]] = None) -> dict:
    """The `mesh:` config of n clusters c0..c(n-1), writing their kubeconfig; `servers` gives a
    context's API server (by default a name that never resolves)."""
    from tests.conftest import write_kubeconfig

    names = [f"c{i}" for i in range(n)]
    write_kubeconfig(kubeconfig, names, servers)
    return {
        "meshId": "mesh1",
        "istioVersion": "v1.30.3",
        "sampleApps": True,
        "clusters": [
            {
                "name": name,
                "kubeconfig": str(kubeconfig),
                "context": name,
                "clusterName": f"cluster{i}",
                "network": f"network{i}",
                "apiServerUrl": f"https://api.{name}.example.com:6443",
                "egressCidrs": [f"10.{i // 250}.{i % 250}.0/24"],
            }
            for i, name in enumerate(names)
        ],
    }


def _ours(n: int, workdir: pathlib.Path) -> int:
    from tests import engine_mocks

    monitor = engine_mocks.install()
    cfg = config.parse(raw_config(n, workdir / f"kubeconfig-{n}"))
    plan = plan_mesh(cfg, {}, datetime.datetime.now(datetime.timezone.utc))
    engine_mocks.run_program(lambda: program.build(plan).outputs())
    return len(monitor.registrations)


def _floor(n: int, resources: int) -> int:
    """As many resources, spread over n providers, with nothing of ours: the SDK's own cost of
    registering them (bare custom resources of the provider's ConfigMap type)."""
    import pulumi
    import pulumi_kubernetes as k8s

    from tests import engine_mocks

    monitor = engine_mocks.install()

    def body() -> None:
        providers = [k8s.Provider(f"c{i}", cluster_identifier=f"c{i}") for i in range(n)]
        for index in range(resources - n):
            props = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"r{index}"}, "data": {"k": "v"}}
            opts = pulumi.ResourceOptions(provider=providers[index % n])
            pulumi.CustomResource("kubernetes:core/v1:ConfigMap", f"r{index}", props, opts)

    engine_mocks.run_program(body)
    return len(monitor.registrations)


def _one(kind: str, n: int, resources: int) -> None:
    """In this (fresh) process: one figure, printed as JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        memory = kind.endswith("-memory")
        if memory:
            tracemalloc.start()
        started = time.perf_counter()
        registered = _ours(n, pathlib.Path(tmp)) if kind.startswith("ours") else _floor(n, resources)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] / 2**20 if memory else 0.0
    print(json.dumps({"seconds": seconds, "peak_mib": peak, "resources": registered}))


def _figure(kind: str, n: int, resources: int = 0) -> dict:
    argv = [sys.executable, "-m", "bench.graph", "--one", kind, str(n), str(resources)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=pathlib.Path(__file__).parent.parent)
    return json.loads(done.stdout.strip().splitlines()[-1])


def exponent(points: list[tuple[float, float]]) -> float:
    """The least-squares slope of log(seconds) over log(resources): 1.0 is linear."""
    xs, ys = [math.log(r) for r, _ in points], [math.log(s) for _, s in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def measure(sizes: list[int]) -> list[Row]:
    rows, points, floor_points = [], [], []
    for n in sizes:
        ours = _figure("ours", n)
        floor = _figure("floor", n, ours["resources"])
        memory, floor_memory = _figure("ours-memory", n), _figure("floor-memory", n, ours["resources"])
        points.append((ours["resources"], ours["seconds"]))
        floor_points.append((ours["resources"], floor["seconds"]))
        target = f"; target for 32 clusters: under {GRAPH_TARGET_SECONDS:g} s" if n == 32 else ""
        note = f"{ours['resources']} resources, {n * (n - 1)} remote secrets; floor: as many resources, no planning"
        rows.append(Row(f"graph build, {n} clusters", ours["seconds"], floor["seconds"], note=note + target))
        rows.append(Row(f"graph build peak memory, {n} clusters", memory["peak_mib"], floor_memory["peak_mib"], "MiB"))
    if len(points) > 1:
        note = "1.0 is linear; floor: the SDK's own registration's exponent"
        rows.append(
            Row("graph build growth exponent in resources", exponent(points), exponent(floor_points), "", note=note)
        )
    return rows


def main(argv: list[str]) -> None:
    if argv[:1] == ["--one"]:
        _one(argv[1], int(argv[2]), int(argv[3]))
        return
    sizes = [int(a) for a in argv] or [2, 4, 8, 16, 32]
    print(render(measure(sizes), "graph build"))


if __name__ == "__main__":
    main(sys.argv[1:])
