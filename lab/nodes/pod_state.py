"""Where a lab node records each pod it runs (`<lab>/<cluster>/pods/<namespace>.<name>/pod.json`:
its network namespace, pod IP, root, readiness, and per container pid, log, env and user), read by
`lab status` and by the node's kubelet API (toolchain/go/kubelet-api)."""

from __future__ import annotations

import json
import os
from pathlib import Path


def pod_dirs(lab_dir: Path) -> list[Path]:
    """Every pod directory of the lab."""
    return sorted(p.parent for p in lab_dir.glob("*/pods/*/pod.json"))


def read_state(pod_dir: Path) -> dict:
    try:
        return json.loads((pod_dir / "pod.json").read_text())
    except (OSError, ValueError):
        return {}


def write_state(pod_dir: Path, state: dict) -> None:
    pod_dir.mkdir(parents=True, exist_ok=True)
    tmp = pod_dir / "pod.json.tmp"
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, pod_dir / "pod.json")  # `lab status` never reads half a file
