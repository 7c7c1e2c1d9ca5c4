"""Where the kubelet stand-in records each process it runs for a pod (`<lab>/<cluster>/pods/
<namespace>.<name>/pod.json`: pid, address, ports, log, readiness), read by `lab status` and by
`lab down`, which stops whatever the stand-in could not."""

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
