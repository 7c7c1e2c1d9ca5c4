"""python -m lab up|down|status|run|env"""

from __future__ import annotations

import argparse
import json
import shlex
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
        "--no-standin",
        action="store_true",
        help="run no nodes, network or load balancers (no pods) and no Sail operator (no Istio status)",
    )
    up.add_argument(
        "--no-cert-manager", action="store_true", help="run no cert-manager controller and install none of its CRDs"
    )
    up.add_argument(
        "--vault", action="store_true", help="also run lab.vault.server, the stand-in for Vault's PKI engine and auth"
    )
    down = sub.add_parser("down", help="stop everything the lab started and remove DIR")
    status = sub.add_parser("status", help="print what runs, as JSON")
    run = sub.add_parser("run", help="start the lab if it is not running, then `pulumi up` the `lab` stack on it")
    run.add_argument("--stack", default="lab", help="the stack to run (default: lab)")
    env = sub.add_parser(
        "env", help='print the exports that point pulumi and kubectl at the lab: eval "$(python -m lab env)"'
    )
    for p in (up, down, status, run, env):
        p.add_argument("--dir", type=Path, default=None, help=f"state dir (default $MESH_LAB_DIR or {default_dir()})")
    args = parser.parse_args(argv)
    dir = (args.dir or default_dir()).resolve()

    if args.command == "up":
        started = time.monotonic()
        names = [n.strip() for n in args.clusters.split(",") if n.strip()]
        lab = Lab(
            dir, clusters=names, standin=not args.no_standin, cert_manager=not args.no_cert_manager, vault=args.vault
        ).up()
        for c in lab.clusters:
            print(f"{c.name}: {c.server}")
        if args.vault:
            vault = lab.vault
            print(f"vault stand-in: {vault.address} (CA {lab.dir / 'vault' / 'serving' / 'ca.crt'}, root token in {lab.dir / 'vault' / 'root-token'})")  # fmt: skip
        print(f"up in {time.monotonic() - started:.1f}s; state in {lab.state_path}")
        print(f"export KUBECONFIG={lab.kubeconfig_path}")
        return 0

    if args.command == "run":
        return run_lab_stack(dir, args.stack)

    if args.command == "env":
        from .stack import VENV, pulumi_env

        exports = {**pulumi_env(dir / "state"), "KUBECONFIG": str(Lab(dir).kubeconfig_path)}
        for key, value in exports.items():
            if key == "PATH":  # the toolchain first, then the shell's own PATH
                print(f'export PATH={shlex.quote(str(VENV / "bin"))}:"$PATH"')
            elif key == "PULUMI_CONFIG_PASSPHRASE":
                # The lab's state is encrypted with the caller's own passphrase (empty when
                # unset): keep it as it is in the shell, never print it.
                print(f'export {key}="${{{key}-}}"')
            else:
                print(f"export {key}={shlex.quote(value)}")
        return 0

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


def run_lab_stack(dir: Path, stack_name: str = "lab") -> int:
    """The lab's run command (README, docs/lab.md): the mesh program, for real, on a lab of two clusters; then a
    short report for a person (lab/run_report.py), the engine's output in a log file."""
    from pulumi import automation as auto

    from .run_report import RunFacts, render
    from .stack import echo, mesh_config, open_stack

    lab = Lab.load(dir) if (dir / "lab.json").exists() else None
    running = lab is not None and all(c["ready"] for c in lab.status()["clusters"].values())
    lab_seconds = None
    if not running:
        print(f"Starting the lab in {dir} ...", flush=True)
        started = time.monotonic()
        lab = Lab(dir).up()
        lab_seconds = time.monotonic() - started
    assert lab is not None
    stack = open_stack(stack_name, mesh_config(lab.clusters, lab.kubeconfig_path), dir / "state")
    log = dir / f"{stack_name}-up.log"
    names = ", ".join(c.name for c in lab.clusters)
    print(f"`pulumi up` of stack `{stack_name}` on {names} (follow it: tail -f {log}) ...", flush=True)
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as handle:
        try:
            result = stack.up(on_output=lambda line: echo(line, handle), color="never")
        except auto.CommandError:
            handle.flush()
            tail = log.read_text(encoding="utf-8").splitlines()[-25:]
            print(f"`pulumi up` failed; the engine's output is in {log}. Its end:", file=sys.stderr)
            print("\n".join("  " + line for line in tail), file=sys.stderr)
            return 1
    up_seconds = time.monotonic() - started
    outputs = {key: value.value for key, value in result.outputs.items() if not value.secret}
    root_certificate = dir / f"{stack_name}-root-cert.pem"
    root_certificate.write_text(outputs.get("rootCertificate") or "", encoding="utf-8")
    changes = result.summary.resource_changes or {}
    facts = RunFacts(
        stack=stack_name,
        lab_dir=dir,
        kubeconfig=lab.kubeconfig_path,
        root_certificate=root_certificate,
        log=log,
        lab_seconds=lab_seconds,
        up_seconds=up_seconds,
        changes=changes,
        outputs=outputs,
        istiods=lab.istiods(),
        dir_flag="" if dir == default_dir().resolve() else f" --dir {shlex.quote(str(dir))}",
    )
    print(render(facts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
