"""What `python -m lab run` tells a person once the mesh is up: per cluster what was made
(istiod, gateway address, remote secrets, reader token), where the root certificate and the
kubeconfig are, how long it took, and what to run next. The full outputs stay one
`pulumi stack output` away; nothing secret is printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa


@dataclass(frozen=True)
class RunFacts:
    stack: str
    lab_dir: Path
    kubeconfig: Path
    root_certificate: Path
    """Where `lab run` wrote the stack's `rootCertificate` (the trust bundle)."""
    log: Path
    """The engine's output of the `up`."""
    lab_seconds: Optional[float]
    """How long starting the lab took; None when it was already running."""
    up_seconds: float
    changes: Mapping[str, int]
    """The `up`'s resource changes by operation (`create`, `same`, ...)."""
    outputs: Mapping[str, Any]
    """The stack's outputs (plain values only)."""
    istiods: Mapping[str, Mapping[str, dict]]
    """cluster -> "istiod" -> its pod as the cluster's node runs it (`Lab.istiods`)."""
    dir_flag: str
    """`--dir ...` when the lab is not in the default folder, else empty."""


def describe_certificate(pem: str) -> str:
    """The first certificate of a PEM bundle in one line: subject, key, expiry."""
    certificate = x509.load_pem_x509_certificates(pem.encode())[0]
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        algorithm = f"RSA {key.key_size}"
    elif isinstance(key, ec.EllipticCurvePublicKey):
        algorithm = f"ECDSA {key.curve.name}"
    else:
        algorithm = type(key).__name__
    expires = certificate.not_valid_after_utc.strftime("%Y-%m-%d")
    return f"{certificate.subject.rfc4514_string()}, {algorithm}, valid until {expires}"


def _istiod_lines(deployments: Mapping[str, dict]) -> list[str]:
    if not deployments:
        return ["istiod          not started (the Istio resource is not Ready)"]
    lines = []
    for name, state in sorted(deployments.items()):
        health = "ready" if state.get("running") and state.get("ready") else "NOT ready"
        lines.append(
            f"istiod          {health}: real pilot-discovery `{name}`, pid {state.get('pid')}, "
            f"{state.get('ip')} (xDS/CA :15012, debug :15014)"
        )
    return lines


def _clusters(facts: RunFacts) -> list[str]:
    clusters: Mapping[str, Any] = facts.outputs.get("clusters") or {}
    by_cluster_name = {c.get("clusterName"): name for name, c in clusters.items()}
    lines: list[str] = []
    for name, cluster in sorted(clusters.items()):
        lines.append(f"{name}: Istio cluster {cluster.get('clusterName')} on network {cluster.get('network')}")
        lines.extend("  " + line for line in _istiod_lines(facts.istiods.get(name, {})))
        address = cluster.get("gatewayAddress") or "no address yet"
        lines.append(f"  gateway         {address} (Service istio-system/istio-eastwestgateway, port 15443)")
        for secret in cluster.get("remoteSecrets") or []:
            source = by_cluster_name.get(secret.removeprefix("istio-remote-secret-"), "?")
            lines.append(f"  remote secret   istio-system/{secret}: this istiod reads {source}")
        lines.append(
            f"  reader token    istio-system/{cluster.get('readerTokenSecret')} (what the others read this with)"
        )
    return lines


def _took(facts: RunFacts) -> str:
    done = ", ".join(f"{count} {operation}" for operation, count in sorted(facts.changes.items()) if count)
    lab = "already running" if facts.lab_seconds is None else f"started in {facts.lab_seconds:.1f} s"
    return f"Lab {lab}; `pulumi up` of stack `{facts.stack}` in {facts.up_seconds:.1f} s ({done or 'no change'})."


def _commands(commands: list[tuple[str, str]]) -> list[str]:
    """Commands, one a line, their comments lined up."""
    width = max(len(command) for command, _ in commands)
    return [f"  {command.ljust(width)}  # {why}" if why else f"  {command}" for command, why in commands]


def render(facts: RunFacts) -> str:
    """The report, as lines of text."""
    bundle = facts.outputs.get("rootCertificate") or ""
    roots = bundle.count("BEGIN CERTIFICATE")
    root_line = describe_certificate(bundle) if bundle else "none"
    stack_flag = f" --stack {facts.stack}"
    lines = [
        _took(facts),
        "",
        *_clusters(facts),
        "",
        f"Root certificate: {facts.root_certificate}" + (f" ({roots} roots, rotation under way)" if roots > 1 else ""),
        f"                  {root_line}",
        f"Kubeconfig:       {facts.kubeconfig} (one context per cluster)",
        f"Engine output:    {facts.log}",
        "",
        "Next:",
        *_commands(
            [
                (f"export KUBECONFIG={facts.kubeconfig}", ""),
                (f".venv/bin/mesh verify{stack_flag}", "trust, remote secrets and istiod, end to end"),
                (f'eval "$(.venv/bin/python -m lab env{facts.dir_flag})"', "pulumi and kubectl pointed at the lab"),
                (f".venv/bin/pulumi stack output{stack_flag}", "every output of the stack"),
                (f".venv/bin/python -m lab down{facts.dir_flag}", "stop the lab and remove it"),
            ]
        ),
    ]
    return "\n".join(lines)
