"""A preview of a large mesh: N clusters whose API servers do not answer (as in a pull request's
preview run far from the clusters), to see that the engine, the program and one Kubernetes
provider per cluster fit in this machine's memory. Issue 11's target: 100 clusters within 24 GiB.

    .venv/bin/python -m bench.scale [N]
"""

from __future__ import annotations

import pathlib
import sys
import tempfile

import yaml

from lab.stack import LAB_MESH

from . import projects
from .report import Row, render

MEMORY_TARGET_MIB = 24 * 1024


def _kubeconfig(path: pathlib.Path, n: int) -> None:
    """Contexts c1..cN, each at its own loopback address on a closed port: refused at once."""
    names = [f"c{i + 1}" for i in range(n)]
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": c, "cluster": {"server": f"https://127.0.{1 + i // 250}.{2 + i % 250}:1"}}
            for i, c in enumerate(names)
        ],
        "users": [{"name": c, "user": {"token": "unused"}} for c in names],
        "contexts": [{"name": c, "context": {"cluster": c, "user": c}} for c in names],
        "current-context": names[0],
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")


def config(n: int, kubeconfig: pathlib.Path) -> dict:
    mesh = dict(LAB_MESH)
    mesh["clusters"] = [
        {
            "name": f"c{i + 1}",
            "kubeconfig": str(kubeconfig),
            "context": f"c{i + 1}",
            "clusterName": f"cluster{i + 1}",
            "network": f"network{i + 1}",
            "apiServerUrl": f"https://api.c{i + 1}.example.com:6443",
            "egressCidrs": [f"10.{i // 250}.{i % 250}.0/24"],
        }
        for i in range(n)
    ]
    return mesh


def measure(n: int, workdir: pathlib.Path) -> list[Row]:
    workdir.mkdir(parents=True, exist_ok=True)
    _kubeconfig(workdir / "kubeconfig", n)
    mesh = projects.mesh_project(workdir / "project", workdir / "state", "scale").init(
        config(n, workdir / "kubeconfig")
    )
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
