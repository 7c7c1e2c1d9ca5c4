"""The repository's own habits, run with the tests so CI runs them: ruff's linter and formatter
over the Python code (pyproject.toml, [tool.ruff]) and shellcheck over the shell scripts."""

from __future__ import annotations

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
SHELL_SCRIPTS = ["setup.sh", ".ci/run", *sorted(str(p.relative_to(REPO)) for p in (REPO / "toolchain").glob("*.sh"))]


def _bin(name: str) -> str:
    return str(pathlib.Path(sys.executable).parent / name)


def test_ruff_finds_nothing():
    done = subprocess.run([_bin("ruff"), "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format_leaves_every_file_as_it_is():
    done = subprocess.run(
        [_bin("ruff"), "format", "--check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, "run `ruff format .`:\n" + done.stdout + done.stderr


def test_shellcheck_finds_nothing():
    done = subprocess.run([_bin("shellcheck"), *SHELL_SCRIPTS], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
