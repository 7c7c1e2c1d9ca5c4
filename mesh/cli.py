"""The `mesh` command, run beside `pulumi up`: `mesh verify` shows that the deployed mesh works.

It reads the same `mesh:` config as the program (through `mesh.config.parse`, so a bad value
gets the same message) and reaches every cluster through the same kubeconfig context.
Results go to stdout (tables, or one JSON document with `--json`), progress to stderr.
Exit status: 0 when every check passes, 1 when one fails, 2 when the command cannot run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml
from cryptography import x509

from . import config
from .config import kinds
from . import verify as v

PULUMI_JSON_KEYS = {"value", "secret", "objectValue"}


class UsageError(Exception):
    """The command cannot run as asked; the message says what to change."""


def _encrypted(value: Any) -> bool:
    if isinstance(value, dict):
        return "secure" in value or any(_encrypted(item) for item in value.values())
    if isinstance(value, list):
        return any(_encrypted(item) for item in value)
    return False


def mesh_keys(document: Any, source: str) -> dict[str, Any]:
    """The `mesh:` keys, without the prefix, of a stack config file (`Pulumi.<stack>.yaml`) or of
    `pulumi config --json --show-secrets` output."""
    entries = document.get("config", document) if isinstance(document, dict) else None
    if not isinstance(entries, dict):
        raise UsageError(f"{source}: not a Pulumi stack config (a mapping of `{config.NAMESPACE}:` keys)")
    prefix = config.NAMESPACE + ":"
    raw = {}
    for key, value in entries.items():
        if not key.startswith(prefix):
            continue
        if isinstance(value, dict) and value and set(value) <= PULUMI_JSON_KEYS:
            value = value.get("objectValue", value.get("value", {"secure": None}))
        if _encrypted(value):
            raise UsageError(
                f"{source}: {key} is encrypted and only Pulumi can decrypt it; run "
                "`pulumi config --json --show-secrets > mesh-config.json` and pass --config mesh-config.json"
            )
        raw[key[len(prefix) :]] = value
    if not raw:
        raise UsageError(f"{source}: no `{prefix}` keys")
    return raw


def load_config(stack: Optional[str], path: Optional[str]) -> config.MeshConfig:
    file = Path(path) if path else Path.cwd() / f"Pulumi.{stack}.yaml"
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        where = "" if path else " (run `mesh verify` in the Pulumi project directory, or pass --config)"
        raise UsageError(f"{file}: no such file{where}") from None
    except yaml.YAMLError as error:
        raise UsageError(f"{file}: not YAML or JSON: {error}") from None
    return config.parse(mesh_keys(document, str(file)))


def load_roots(path: Optional[str]) -> tuple[x509.Certificate, ...]:
    """The certificates in a PEM file: one root, or two during a root rotation."""
    if path is None:
        return ()
    try:
        return tuple(x509.load_pem_x509_certificates(Path(path).read_bytes()))
    except (OSError, ValueError) as error:
        raise UsageError(f"--root-cert {path}: not a PEM certificate ({error})") from None


# --- output -------------------------------------------------------------------------------

_SHOWN = {v.PASS: "ok", v.FAIL: "FAIL", v.SKIP: "skip"}


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """Columns padded to their widest cell; `right` lists the columns aligned right (counts)."""
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        padded = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        return "  " + "  ".join(padded).rstrip()

    return "\n".join(line(row) for row in cells)


def traffic_table(report: v.Report, results: Sequence[v.Result]) -> str:
    """Per source cluster: one line per cluster that answered it (or should have), then its
    requests and failures."""
    verdicts = {(r.cluster, r.item): r for r in results}
    rows = []
    for row in report.traffic:
        if row.exec_error and not row.requests:
            rows.append([row.source, "-", "-", "-", "-", "-", "FAIL", row.exec_error])
            continue
        for target in row.targets():
            verdict = verdicts[(row.source, v.pair_item(target))]
            latency = [row.latency_ms(target, share) for share in (0.5, 0.99)]
            shown = ["-" if ms is None else f"{ms:.1f}" for ms in latency]
            detail = verdict.detail if verdict.failed else ""
            answers = len(row.replies.get(target, []))
            rows.append(
                [row.source, target, answers, row.versions_text(target) or "-", *shown, _SHOWN[verdict.status], detail]
            )
        verdict = verdicts[(row.source, v.SOURCE_ITEM)]
        rows.append([row.source, "(failed)", len(row.errors), "-", "-", "-", _SHOWN[verdict.status], verdict.detail])
    return table(["FROM", "TO", "ANSWERS", "VERSIONS", "P50 ms", "P99 ms", "RESULT", "DETAIL"], rows, right=(2, 4, 5))


def render(report: v.Report) -> str:
    where = ", ".join(f"{version} on {' and '.join(names)}" for version, names in report.expected_versions.items())
    sent = (
        f"{report.held['seconds']:.0f} s of steady traffic ({report.held['ratePerStream']:g}/s on new connections and "
        f"{report.held['ratePerStream']:g}/s on one kept-alive connection)"
        if report.held
        else f"{report.requests} requests or more"
    )
    titles = {
        v.TRAFFIC: f"{v.TRAFFIC}: {sent} from each cluster's sleep to {v.HELLOWORLD_URL} "
        f"(deployed: {where}), each answer's cluster read from the pod that gave it"
    }
    sections = []
    for check in v.CHECKS:
        results = [r for r in report.results if r.check == check]
        if not results:
            continue
        if check == v.TRAFFIC and report.traffic:
            body = traffic_table(report, results)
        else:
            rows = [[r.cluster, r.item, _SHOWN[r.status], r.detail] for r in results]
            body = table(["CLUSTER", "ITEM", "RESULT", "DETAIL"], rows)
        sections.append(f"{titles.get(check, check)}\n{body}")
    sections.append(report.summary())
    return "\n\n".join(sections)


# --- the command --------------------------------------------------------------------------


def _positive(kind: type, noun: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value <= 0:
            raise argparse.ArgumentTypeError(f"expected {noun} above 0, not {text!r}")
        return value

    return parse


def _duration(text: str) -> float:
    try:
        return float(kinds.duration_seconds(int(text) if text.isdigit() else text))
    except kinds.Refused:
        raise argparse.ArgumentTypeError(f"expected a duration above 0 such as 60s, 5m or 1h, not {text!r}") from None


def _at_least_zero(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, not {text!r}")
    return int(text)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mesh", description="Commands for the mesh `pulumi up` built.")
    commands = top.add_subparsers(dest="command", required=True)
    verify = commands.add_parser(
        "verify",
        help="check, cluster by cluster and pair by pair, that the mesh works",
        description="Check the control planes, gateways, cacerts, remote secrets, sample pods, and "
        "traffic from every cluster to every cluster's helloworld, pair by pair. Exit 0 only when all pass.",
    )
    source = verify.add_mutually_exclusive_group(required=True)
    source.add_argument("--stack", metavar="NAME", help="read Pulumi.NAME.yaml in the current directory")
    source.add_argument(
        "--config",
        metavar="FILE",
        help="a stack config file, or `pulumi config --json --show-secrets` output (for encrypted values)",
    )
    verify.add_argument("--json", action="store_true", help="one JSON document on stdout, for pipelines")
    verify.add_argument(
        "--requests",
        type=_positive(int, "a whole number"),
        default=10,
        metavar="N",
        help="curl requests per source cluster, at least (10; up to 4x while a cluster has not answered)",
    )
    verify.add_argument(
        "--traffic-for",
        type=_duration,
        metavar="DURATION",
        help="instead of --requests: hold steady traffic this long (60s, 5m) from every cluster's sleep, "
        "--rate requests/s on new connections and as many on one kept-alive connection, and report each "
        "pair's failures and latency; run it beside a rotation",
    )
    verify.add_argument(
        "--rate",
        type=_positive(float, "a number of requests per second"),
        default=v.Settings.rate,
        metavar="PER_SECOND",
        help=f"with --traffic-for: requests per second on each of a source's two streams ({v.Settings.rate:g})",
    )
    verify.add_argument(
        "--tolerate",
        type=_at_least_zero,
        default=0,
        metavar="N",
        help="failed requests per source cluster that still pass the traffic check (0)",
    )
    verify.add_argument(
        "--timeout",
        type=_positive(float, "a number of seconds"),
        default=v.Settings.timeout,
        metavar="SECONDS",
        help=f"how long, in all, to wait for things still settling: Istio Ready, istiod, gateway "
        f"addresses, sample pods ({v.Settings.timeout:.0f})",
    )
    verify.add_argument(
        "--request-timeout",
        type=_positive(float, "a number of seconds"),
        default=v.Settings.request_timeout,
        metavar="SECONDS",
        help=f"how long one API call or one curl may take ({v.Settings.request_timeout:.0f})",
    )
    verify.add_argument(
        "--root-cert",
        metavar="FILE",
        help="the roots the mesh should trust (`pulumi stack output rootCertificate > root.pem`; two "
        "during a root rotation); without it the clusters are only checked to trust each other",
    )
    return top


def _progress(line: str) -> None:
    print(f"mesh verify: {line}", file=sys.stderr, flush=True)


def run_verify(args: argparse.Namespace) -> int:
    mesh = load_config(args.stack, args.config)
    settings = v.Settings(
        requests=args.requests,
        tolerate=args.tolerate,
        timeout=args.timeout,
        request_timeout=args.request_timeout,
        mesh_roots=load_roots(args.root_cert),
        traffic_for=args.traffic_for,
        rate=args.rate,
    )
    apis = {}
    try:
        for cluster in mesh.clusters:
            try:
                apis[cluster.name] = v.connect(cluster, settings.request_timeout)
            except Exception as error:  # noqa: BLE001 - the kubeconfig loader raises many kinds
                raise UsageError(f"cluster {cluster.name}: context {cluster.context} cannot be used: {error}") from None
        report = v.verify(mesh, apis, v.PodExec(mesh, apis, settings.request_timeout), settings, _progress)
    finally:
        for api in apis.values():
            api.close()
    print(json.dumps(report.to_dict(), indent=2) if args.json else render(report))
    return 0 if report.ok else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    try:
        return run_verify(args)
    except (UsageError, config.ConfigError) as error:
        print(f"mesh verify: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
