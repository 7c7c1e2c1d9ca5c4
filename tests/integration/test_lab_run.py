"""`python -m lab run` as a person runs it, on a lab of its own: a short report, the root
certificate in a file, and next commands that work as printed (`lab env`, then
`pulumi stack output` and kubectl with what it exported)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

from lab.stack import REPO, VENV

STACK = "itest-lab-run"


def lab(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lab", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def exported(lab_dir) -> dict[str, str]:
    """The environment after `eval "$(python -m lab env)"` in a shell, as the report says to."""
    script = f'eval "$({shlex.quote(sys.executable)} -m lab env --dir {shlex.quote(str(lab_dir))})" && env -0'
    done = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    return dict(item.split("=", 1) for item in done.stdout.split("\0") if "=" in item)


def test_lab_run_reports_the_mesh_and_its_next_commands_work(tmp_path):
    lab_dir = tmp_path / "lab"
    try:
        run = lab("run", "--dir", str(lab_dir), "--stack", STACK)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        text, lines = run.stdout, run.stdout.splitlines()
        assert "BEGIN CERTIFICATE" not in text and '": ' not in text  # no PEM, no JSON
        assert len(lines) <= 35, text
        assert lines[-1].startswith(f"  .venv/bin/python -m lab down --dir {lab_dir}")

        env = exported(lab_dir)
        assert env["KUBECONFIG"] == str(lab_dir / "kubeconfig")
        assert env["PULUMI_BACKEND_URL"].startswith((lab_dir / "state").as_uri())
        outputs = json.loads(
            subprocess.run(
                [str(VENV / "bin" / "pulumi"), "stack", "output", "--stack", STACK, "--json"],
                cwd=REPO, env=env, capture_output=True, text=True, check=True,
            ).stdout
        )  # fmt: skip
        # The file the report names holds the stack's root certificate.
        assert f"Root certificate: {lab_dir / f'{STACK}-root-cert.pem'}" in lines
        assert (lab_dir / f"{STACK}-root-cert.pem").read_text() == outputs["rootCertificate"]
        for name, cluster in outputs["clusters"].items():
            assert cluster["gatewayAddress"], name
            assert f"  gateway         {cluster['gatewayAddress']} " in text
            assert f"{name}: Istio cluster {cluster['clusterName']} on network {cluster['network']}" in lines
            for secret in cluster["remoteSecrets"]:
                assert f"istio-system/{secret}: this istiod reads " in text
        ready = [line for line in lines if "ready: real pilot-discovery" in line]
        assert len(ready) == len(outputs["clusters"]), text

        # kubectl, with the exported KUBECONFIG alone, sees each cluster's Istio resource Ready.
        for name in outputs["clusters"]:
            kubectl = [str(VENV / "bin" / "kubectl"), "--context", name, "get", "istio", "default"]
            state = subprocess.run([*kubectl, "-o", "jsonpath={.status.state}"], env=env, capture_output=True,
                                   text=True, check=True)  # fmt: skip
            assert state.stdout == "Healthy", (name, state.stdout, state.stderr)
    finally:
        lab("down", "--dir", str(lab_dir), timeout=300)
        (REPO / f"Pulumi.{STACK}.yaml").unlink(missing_ok=True)
