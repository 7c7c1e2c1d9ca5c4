"""The benchmark at its smallest size, as a smoke check: every part runs to its end and prints
each figure beside its floor. No figure is asserted against a time (the benchmark is where
speed is judged, not a test)."""

from __future__ import annotations

import re
import subprocess
import sys

from ..conftest import REPO


def test_the_benchmark_runs_at_its_smallest_size_with_a_floor_beside_each_time():
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke"], cwd=REPO, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = {line.split("  ")[0]: line for line in done.stdout.splitlines()}
    for what in (
        "graph build, 2 clusters",
        "`up` from nothing, 2 clusters",
        "no-op `preview`, 2 clusters",
        "no-op `up`, 2 clusters",
        "`up` from nothing, 2 clusters, OpenShift CRDs",
        "no-op `preview`, 2 clusters, OpenShift CRDs",
        "`preview` from nothing, 3 unreachable clusters",
        "first request across clusters, from nothing, 2 clusters",
    ):
        assert what in rows, done.stdout
        assert re.search(r"\d+\.\d\d s +\d+\.\d\d s +\d+\.\d\dx", rows[what]), rows[what]
    assert any(what.startswith("peak RSS of `up`, provider kubernetes") for what in rows), done.stdout
    # The data plane: memory in MiB and requests per second, each beside its floor, and no failed request.
    for what, unit in (
        ("memory of one sidecar (pilot-agent + Envoy), 2 clusters", "MiB"),
        ("memory of the whole lab with the mesh, 2 clusters", "MiB"),
        ("requests/s of one sleep across clusters, 2 clusters", "req/s"),
        ("requests/s of one sleep in its own cluster, 2 clusters", "req/s"),
    ):
        assert re.search(rf"[\d,]+ {re.escape(unit)} +[\d,]+ {re.escape(unit)} +\d+\.\d\dx", rows[what]), rows[what]
        if unit == "req/s":  # every request of the load answered 200 (the note counts any that did not)
            assert "failed" not in rows[what], rows[what]
