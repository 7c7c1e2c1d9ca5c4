"""A user's clone, as a user gets it: the tracked files only, nothing beside them (no ../shared),
no toolchain on PATH, fresh virtualenvs from the package index.

- the GitOps workflow's own steps (the preview job's, before it needs the clusters), run as
  written: they must pass on a stock runner;
- `pip install .` gives a `mesh` command that runs: its help, and a verify of a stack whose
  clusters cannot be reached, which says so per cluster.

No lab here; each test makes a virtualenv and installs into it (about half a minute each).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from ..conftest import REPO

WORKFLOW = REPO / ".github" / "workflows" / "mesh.yml"


def tracked_copy(tmp_path: Path) -> Path:
    """The checkout's tracked files in a folder of their own (its parent holds nothing else)."""
    repo = tmp_path / "clone" / "repo"
    repo.mkdir(parents=True)
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    assert not (repo.parent / "shared").exists() and sorted(p.name for p in repo.parent.iterdir()) == ["repo"]
    return repo


def stock_env(tmp_path: Path) -> dict[str, str]:
    """A runner's environment: `python` is a plain Python 3.11 (setup-python's), and nothing of
    the toolchain is on PATH. The package index settings of this machine are kept."""
    bin_dir = tmp_path / "stock-bin"
    bin_dir.mkdir()
    base = Path(getattr(sys, "_base_executable", sys.executable))
    for name in ("python", "python3"):
        (bin_dir / name).symlink_to(base)
    kept = {k: v for k, v in os.environ.items() if k.startswith(("PIP_", "HTTP", "HTTPS", "NO_PROXY", "SSL_", "REQUESTS_"))}  # fmt: skip
    return {
        **kept,
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "LANG": "C.UTF-8",
    }


def run(command: str, cwd: Path, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    # GitHub runs a `run:` step as `bash -e {0}`.
    return subprocess.run(["bash", "-e", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def test_the_workflows_own_steps_pass_in_a_clean_clone_without_the_toolchain(tmp_path):
    repo = tracked_copy(tmp_path)
    env = stock_env(tmp_path)
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["preview"]["steps"]
    # Up to the step that needs the clusters' kubeconfig: what a pull request runs first.
    ours = []
    for step in steps:
        if "MESH_KUBECONFIG" in str(step.get("env", {})):
            break
        if "run" in step:
            ours.append(step)
    assert [s["name"] for s in ours] == ["Install the program's and the tests' packages", "Unit tests"]
    for step in ours:
        done = run(step["run"], repo, env)
        assert done.returncode == 0, f"{step['name']}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert " passed" in done.stdout and " failed" not in done.stdout, done.stdout[-500:]
    assert " skipped" not in done.stdout, done.stdout[-1500:]  # deselected by markers, never skipped


def test_pip_install_gives_a_mesh_command_that_verifies(tmp_path):
    repo = tracked_copy(tmp_path)
    env = stock_env(tmp_path)
    venv = tmp_path / "venv"
    installed = run(f"python -m venv {venv} && {venv}/bin/pip install --disable-pip-version-check -q {repo}", tmp_path, env)  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]
    helped = run(f"{venv}/bin/mesh verify --help", tmp_path, env)
    assert helped.returncode == 0 and "--tolerate N" in helped.stdout, helped.stderr
    # A stack whose clusters answer nowhere (closed ports on loopback): each is named, exit 1.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": n, "cluster": {"server": f"https://127.0.0.1:{port}"}}
                     for port, n in enumerate(("east", "west"), start=1)],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": n, "context": {"cluster": n, "user": "u"}} for n in ("east", "west")],
    }))  # fmt: skip
    stack = yaml.safe_load((REPO / "Pulumi.east-west.yaml").read_text())
    for cluster in stack["config"]["mesh:clusters"]:
        cluster["kubeconfig"] = str(kubeconfig)
    (tmp_path / "Pulumi.unreachable.yaml").write_text(yaml.safe_dump(stack))
    verified = run(f"{venv}/bin/mesh verify --stack unreachable --timeout 5 --request-timeout 2", tmp_path, env, 120)
    assert verified.returncode == 1, verified.stdout + verified.stderr
    assert "the mesh is NOT working" in verified.stdout, verified.stdout
    for name in ("east", "west"):
        assert f"  {name}  " in verified.stdout.split("\n\n")[0], verified.stdout
