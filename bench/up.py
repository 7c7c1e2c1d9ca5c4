"""`up` from nothing on fresh lab clusters against its floor (bench/floor.py), then the no-op
`preview` and `up` of that stack against an empty program's on the same backend, with the peak
memory of every process of the `up` by role."""

from __future__ import annotations

import pathlib
import re
import statistics
import time
from typing import Optional

from lab import Lab
from lab.stack import mesh_config

from . import floor, processes, projects
from .processes import Run
from .report import Row
from .stack_objects import manifests_by_cluster

UP_TARGET, PREVIEW_TARGET = 1.5, 2.0


def cluster_names(count: int) -> list[str]:
    return [f"c{index + 1}" for index in range(count)]


def _median(runs: list[Run]) -> float:
    return statistics.median(run.seconds for run in runs)


def _no_op(run: Run, what: str) -> Run:
    """`run` (a preview), having checked that it planned no change: a no-op figure that was
    not one would compare unlike work."""
    planned = re.findall(r"^\s*[-+~]*\s*\d+ to \w+", run.stdout, flags=re.MULTILINE)
    if planned or not re.search(r"^\s*\d+ unchanged\s*$", run.stdout, flags=re.MULTILINE):
        raise RuntimeError(f"the no-op preview of {what} plans changes: {planned}\n{run.stdout[-2000:]}")
    return run


def measure(count: int, workdir: pathlib.Path, runs: int, crds_dir: Optional[pathlib.Path] = None, label: str = "") -> list[Row]:  # fmt: skip
    names = cluster_names(count)
    tag = f"{count} clusters{label}"
    ours = workdir / f"ours-{count}{label.replace(' ', '-')}"
    # The default backend needs no cert-manager: its controllers would only load both labs alike.
    with Lab(ours / "lab", clusters=names, crds_dir=crds_dir, cert_manager=False) as lab:
        config = mesh_config(lab.clusters, lab.kubeconfig_path)
        mesh = projects.mesh_project(ours / "project", ours / "state", "bench").init(config)
        made = mesh.up()
        state = mesh.export()
        objects = manifests_by_cluster(state)
        replay = projects.replay_project(ours / "replay", mesh, state)
        empty = projects.empty_project(ours / "empty", ours / "state", "bench").init()
        empty_up = empty.up()
        settled = processes.wait_until_quiet()
        # In turn, run by run, so that whatever the lab still does weighs on each alike.
        previews, replay_previews, empty_previews, noop_ups, empty_ups = [], [], [], [], []
        for _ in range(runs):
            previews.append(_no_op(mesh.preview(), "the mesh program"))
            replay_previews.append(_no_op(replay.preview(), "its resources replayed"))
            empty_previews.append(empty.preview())
        for _ in range(runs):
            noop_ups.append(mesh.up())
            empty_ups.append(empty.up())
    settings = {c["name"]: (c["clusterName"], c["apiServerUrl"]) for c in config["clusters"]}
    by_hand = workdir / f"floor-{count}{label.replace(' ', '-')}"
    with Lab(by_hand / "lab", clusters=names, crds_dir=crds_dir, cert_manager=False) as lab:
        # The lab's servers differ from the first lab's: take this one's.
        settings = {c.name: (settings[c.name][0], c.server) for c in lab.clusters}
        started = time.monotonic()
        floor.make_everything(by_hand, lab.kubeconfig_path, objects, settings)
        floor_seconds = time.monotonic() - started
    objects_count = sum(len(items) for items in objects.values())
    rows = [
        Row(f"`up` from nothing, {tag}", made.seconds, floor_seconds, target=UP_TARGET,
            note=f"{objects_count} objects; floor: openssl + kubectl apply/wait + istioctl create-remote-secret"),
        Row(f"no-op `preview`, {tag}", _median(previews), _median(empty_previews), target=PREVIEW_TARGET,
            note=f"median of {runs}, after the lab settled ({settled:.0f} s); floor: an empty program on the same backend"),
        Row(f"no-op `preview`, {tag}, against its resources replayed bare", _median(previews),
            _median(replay_previews), note="floor: the stack's own resources, URNs, inputs and dependencies "
            "registered by a program with no logic (bench/replay_program.py)"),
        Row(f"no-op `preview` of those resources replayed bare, {tag}", _median(replay_previews),
            _median(empty_previews), note="what the engine and providers cost for them, beside an empty program"),
        Row(f"no-op `up`, {tag}", _median(noop_ups), _median(empty_ups), note=f"median of {runs}; floor: empty program"),
    ]  # fmt: skip
    floors = empty_up.peaks.total
    for role in sorted(made.peaks.total, key=lambda r: -made.peaks.total[r]):
        count_of = len(made.peaks.count[role])
        each = f"; largest {made.peaks.largest[role]:.0f} MiB, {count_of} processes" if count_of > 1 else ""
        rows.append(Row(f"peak RSS of `up`, {role}, {tag}", made.peaks.total[role], floors.get(role), unit="MiB",
                        note=f"floor: the empty program's{each}"))  # fmt: skip
    rows.append(Row(f"peak RSS of `up`, all processes, {tag}", made.peaks.whole, empty_up.peaks.whole, unit="MiB"))
    return rows
