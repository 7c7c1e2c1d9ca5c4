"""The GitOps workflow: valid for GitHub, previews pull requests, deploys main."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

from .conftest import REPO

WORKFLOW = REPO / ".github" / "workflows" / "mesh.yml"
CHECK_JSONSCHEMA = pathlib.Path(sys.executable).parent / "check-jsonschema"


def schema_check(path: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
    )


def test_workflow_passes_the_github_workflow_schema():
    result = schema_check(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_broken_workflow(tmp_path):
    broken = yaml.safe_load(WORKFLOW.read_text())
    del broken["jobs"]["up"]["runs-on"]
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(broken))
    assert schema_check(path).returncode != 0


@pytest.mark.toolchain
def test_actionlint_accepts_the_workflow():
    actionlint = shutil.which("actionlint", path=str(pathlib.Path(sys.executable).parent))
    assert actionlint, "actionlint is not in .venv/bin: run setup.sh (it builds it from its Go module)"
    result = subprocess.run([actionlint, str(WORKFLOW)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _pulumi_steps(job: dict) -> list[dict]:
    return [step for step in job["steps"] if step.get("uses", "").startswith("pulumi/actions@")]


def test_pull_requests_preview_and_main_deploys():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    # PyYAML reads the key `on` as True.
    triggers = workflow.get("on", workflow.get(True))
    assert set(triggers) == {"pull_request", "push"}
    assert triggers["push"]["branches"] == ["main"]
    preview, up = workflow["jobs"]["preview"], workflow["jobs"]["up"]
    assert "pull_request" in preview["if"]
    assert "refs/heads/main" in up["if"]
    (preview_step,) = _pulumi_steps(preview)
    (up_step,) = _pulumi_steps(up)
    assert preview_step["with"]["command"] == "preview"
    assert preview_step["with"]["comment-on-pr"] is True
    assert up_step["with"]["command"] == "up"
    assert workflow["concurrency"]["cancel-in-progress"] is False


def test_secrets_come_from_the_ci_environment():
    text = WORKFLOW.read_text()
    workflow = yaml.safe_load(text)
    for job in workflow["jobs"].values():
        for step in _pulumi_steps(job):
            for name in ("PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE"):
                assert step["env"][name] == "${{ secrets.%s }}" % name
    assert "BEGIN" not in text and "token:" not in text
