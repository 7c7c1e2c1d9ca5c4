"""What the lab's stand-in processes share: one reconcile round a second over every cluster of
the lab, each cluster's failure logged once per change (a stopped cluster is expected), SIGTERM
to stop, and `python -m lab.<module> --dir DIR` as the way they are started."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Iterable

from .clusters.controlplane import ControlPlane


class Loop:
    """Calls `reconcile_cluster(name)` for each cluster every `interval` until stopped."""

    def __init__(self) -> None:
        self._errors: dict[str, str] = {}

    def cluster_names(self) -> Iterable[str]:
        raise NotImplementedError

    def reconcile_cluster(self, name: str) -> None:
        raise NotImplementedError

    def stopped(self) -> None:
        """Called once when the loop ends (SIGTERM)."""

    def reconcile(self) -> None:
        for name in self.cluster_names():
            self.reconcile_one(name)

    def reconcile_one(self, name: str) -> None:
        """One round for one cluster; its failure logged once per change."""
        try:
            self.reconcile_cluster(name)
            self._errors.pop(name, None)
        except Exception as e:  # noqa: BLE001 - a stopped cluster is expected
            if self._errors.get(name) != str(e):
                print(f"{name}: {type(e).__name__}: {str(e).strip()}", file=sys.stderr, flush=True)
                self._errors[name] = str(e)

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        try:
            while not stop.is_set():
                self.reconcile()
                stop.wait(interval)
        finally:
            self.stopped()


def lab_planes(dir: Path) -> list[ControlPlane]:
    """The clusters recorded in the lab's lab.json."""
    state = json.loads((dir / "lab.json").read_text())
    return [ControlPlane.from_json(c) for c in state["clusters"]]


def main(prog: str, description: str, build: Callable[[Path], Loop], argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=f"python -m {prog}", description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", type=Path, required=True, help="the lab's state dir")
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    loop = build(args.dir.resolve())
    print(f"{prog} running", flush=True)
    loop.run(stop, args.interval)
