"""Benchmark: time and memory to build the mesh's resource graph, by number of clusters.

Runs the program against the Pulumi mocks of the tests (no engine, no cluster), so the figures
are the program's own cost: config checks, planning, and registering every resource. Remote
secrets grow as N(N-1), so this is where a large mesh would show it.

    .venv/bin/python -m bench.graph [N ...]
"""

from __future__ import annotations

import datetime
import pathlib
import sys
import tempfile
import time
import tracemalloc

from mesh import config, program
from mesh.plan.mesh import plan_mesh
from tests import engine_mocks
from tests.conftest import write_kubeconfig


def raw_config(n: int, kubeconfig: pathlib.Path) -> dict:
    names = [f"c{i}" for i in range(n)]
    write_kubeconfig(kubeconfig, names)
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
                "egressCidrs": [f"198.51.{i}.0/24"],
            }
            for i, name in enumerate(names)
        ],
    }


def measure(n: int, workdir: pathlib.Path) -> tuple[float, float, int]:
    raw = raw_config(n, workdir / f"kubeconfig-{n}")
    monitor = engine_mocks.install()
    tracemalloc.start()
    started = time.perf_counter()
    cfg = config.parse(raw)
    plan = plan_mesh(cfg, {}, datetime.datetime.now(datetime.timezone.utc))
    engine_mocks.run_program(lambda: program.build(plan).outputs())
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak / 2**20, len(monitor.registrations)


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [2, 4, 8]
    print(f"{'clusters':>8} {'resources':>9} {'remote secrets':>14} {'seconds':>8} {'peak MiB':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            seconds, peak, resources = measure(n, pathlib.Path(tmp))
            print(f"{n:>8} {resources:>9} {n * (n - 1):>14} {seconds:>8.2f} {peak:>8.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
