"""A preview of a large mesh: N clusters whose API servers do not answer (as in a pull request's
preview run far from the clusters), to see that the engine, the program and one Kubernetes
provider per cluster fit in this machine's memory. Issue 11's target: 100 clusters within 24 GiB.

    .venv/bin/python -m bench.scale [N]
"""

from __future__ import annotations

import pathlib
import sys
import tempfile

from . import projects
from .graph import raw_config
from .report import Row, render

MEMORY_TARGET_MIB = 24 * 1024


def measure(n: int, workdir: pathlib.Path) -> list[Row]:
    workdir.mkdir(parents=True, exist_ok=True)
    # Each context at its own loopback address on a closed port: refused at once, and no two
    # clusters reach the same server (which the config refuses as one cluster entered twice).
    servers = {f"c{i}": f"https://127.0.{1 + i // 250}.{2 + i % 250}:1" for i in range(n)}
    config = raw_config(n, workdir / "kubeconfig", servers)
    mesh = projects.mesh_project(workdir / "project", workdir / "state", "scale").init(config)
    empty = projects.empty_project(workdir / "empty", workdir / "state", "scale").init()
    preview, floor = mesh.preview(), empty.preview()
    peaks = preview.peaks
    rows = [
        Row(f"`preview` from nothing, {n} unreachable clusters", preview.seconds, floor.seconds,
            note="floor: an empty program's preview"),
        Row(f"peak RSS of that preview, all processes, {n} clusters", peaks.whole, floor.peaks.whole, "MiB",
            note=f"target: within {MEMORY_TARGET_MIB:,} MiB (24 GiB)"),
    ]  # fmt: skip
    for role in sorted(peaks.total, key=lambda r: -peaks.total[r])[:4]:
        count = len(peaks.count[role])
        what = f"  {role} ({count} process{'es' if count > 1 else ''})"
        largest = f"largest {peaks.largest[role]:.0f} MiB"
        rows.append(Row(what, peaks.total[role], floor.peaks.total.get(role), "MiB", note=largest))
    return rows


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv else 100
    with tempfile.TemporaryDirectory(prefix="mesh-scale-") as tmp:
        print(render(measure(n, pathlib.Path(tmp)), "large preview"))


if __name__ == "__main__":
    main(sys.argv[1:])
