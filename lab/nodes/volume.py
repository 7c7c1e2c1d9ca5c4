"""Files of a Secret or ConfigMap volume, laid out and updated the way the kubelet does.

The kubelet's AtomicWriter (kubernetes pkg/volume/util/atomic_writer.go) writes a volume's
payload into a fresh hidden directory `..<timestamp>`, points the symlink `..data` at it by
renaming a new symlink over the old one, and exposes each key as a symlink `key -> ..data/key`.
A reader therefore sees either the whole old payload or the whole new one, never a mix: that is
what lets istiod reload a renewed `cacerts` (new key and certificate together) safely, and the
rename of `..data` is the event its file watcher sees. The lab's istiod reads its volumes through
exactly this layout, so renewals and rotations reach it the way they reach a pod.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Mapping

DATA = "..data"


def read(dir: Path) -> dict[str, bytes]:
    """The payload currently visible in `dir` ({} when nothing was written yet)."""
    current = dir / DATA
    if not current.is_dir():
        return {}
    return {f.name: f.read_bytes() for f in sorted(current.iterdir()) if f.is_file()}


def write(dir: Path, payload: Mapping[str, bytes], mode: int = 0o644) -> bool:
    """Make `dir` show exactly `payload`; returns whether anything changed."""
    dir.mkdir(parents=True, exist_ok=True)
    if read(dir) == dict(payload) and (dir / DATA).exists():
        return False
    old = os.readlink(dir / DATA) if (dir / DATA).is_symlink() else None
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + f"{time.time_ns() % 10**9:09d}"
    fresh = dir / stamp
    fresh.mkdir()
    for key, value in payload.items():
        path = fresh / key
        path.write_bytes(value)
        path.chmod(mode)
    # The swap: a new symlink renamed over `..data` (rename is atomic on one file system).
    link = dir / "..data_tmp"
    link.unlink(missing_ok=True)
    link.symlink_to(stamp)
    os.replace(link, dir / DATA)
    # User-visible names: add the new keys' links, remove the links of keys that are gone.
    for key in payload:
        visible = dir / key
        if not visible.is_symlink():
            visible.symlink_to(f"{DATA}/{key}")
    for entry in dir.iterdir():
        if not entry.name.startswith("..") and entry.name not in payload:
            entry.unlink()
    if old and old != stamp:
        shutil.rmtree(dir / old, ignore_errors=True)
    return True
