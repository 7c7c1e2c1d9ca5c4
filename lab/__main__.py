"""python -m lab up|down|status|run"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .lab import DEFAULT_CLUSTERS, Lab, default_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the clusters (stopping a lab already in DIR)")
    up.add_argument(
        "--clusters",
        default=",".join(DEFAULT_CLUSTERS),
        help="comma-separated cluster names, also the kubeconfig contexts",
    )
    up.add_argument(
        "--no-standin", action="store_true", help="do not run lab.operator_standin (no Istio status, no LB addresses)"
    )
    down = sub.add_parser("down", help="stop everything the lab started and remove DIR")
    status = sub.add_parser("status", help="print what runs, as JSON")
    run = sub.add_parser("run", help="start the lab if it is not running, then `pulumi up` the `lab` stack on it")
    for p in (up, down, status, run):
        p.add_argument("--dir", type=Path, default=None, help=f"state dir (default $MESH_LAB_DIR or {default_dir()})")
    args = parser.parse_args(argv)
    dir = (args.dir or default_dir()).resolve()

    if args.command == "up":
        started = time.monotonic()
        names = [n.strip() for n in args.clusters.split(",") if n.strip()]
        lab = Lab(dir, clusters=names, standin=not args.no_standin).up()
        for c in lab.clusters:
            print(f"{c.name}: {c.server}")
        print(f"up in {time.monotonic() - started:.1f}s; state in {lab.state_path}")
        print(f"export KUBECONFIG={lab.kubeconfig_path}")
        return 0

    if args.command == "run":
        return run_lab_stack(dir)

    if not (dir / "lab.json").exists():
        print(f"no lab in {dir}", file=sys.stderr)
        return 0 if args.command == "down" else 1
    lab = Lab.load(dir)
    if args.command == "down":
        lab.down()
        print(f"lab in {dir} stopped and removed")
    else:
        print(json.dumps(lab.status(), indent=2))
    return 0


def run_lab_stack(dir: Path) -> int:
    """The README's run command: the mesh program, for real, on a lab of two clusters."""
    from .stack import echo, mesh_config, open_stack, printable_outputs

    lab = Lab.load(dir) if (dir / "lab.json").exists() else None
    running = lab is not None and all(c["ready"] for c in lab.status()["clusters"].values())
    if not running:
        lab = Lab(dir).up()
    stack = open_stack("lab", mesh_config(lab.clusters, lab.kubeconfig_path), dir / "state")
    stack.up(on_output=echo, color="never")
    print(json.dumps(printable_outputs(stack.outputs()), indent=2))
    for cluster, pods in sorted(lab.istiods().items()):
        for name, state in sorted(pods.items()):
            health = "ready" if state["running"] and state["ready"] else "NOT ready"
            print(
                f"{cluster}: {name} (real istiod, pid {state['pid']}) {health} at {state['ip']} "
                f"(xDS/CA :15012, debug :15014); log {state['log']}"
            )
    print(f"The lab keeps running (kubeconfig: {lab.kubeconfig_path}).")
    print("Verify it:      .venv/bin/mesh verify --stack lab")
    print(f"Stop it all:    .venv/bin/python -m lab down{'' if dir == default_dir().resolve() else f' --dir {dir}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
