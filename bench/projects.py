"""Pulumi projects the benchmark drives with the CLI, as a user would: the mesh program and an
empty Python program (the floor of any Pulumi program), on one local backend.

Each lives in a temporary folder: the mesh project links this checkout's program (`__main__.py`,
`mesh/`) and uses its virtualenv, so nothing is written into the checkout.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
from typing import Any, Mapping

import yaml

from lab.stack import REPO, VENV, pulumi_env, write_config

from . import processes

EMPTY_PROGRAM = (
    '"""An empty Pulumi program: the floor of any Python program on this backend."""\nimport pulumi  # noqa: F401\n'
)


class Project:
    def __init__(self, dir: pathlib.Path, state_dir: pathlib.Path, stack: str):
        self.dir, self.stack, self.state_dir = dir, stack, state_dir
        self.env = {**os.environ, **pulumi_env(state_dir)}

    def pulumi(self, *args: str) -> processes.Run:
        argv = [str(VENV / "bin" / "pulumi"), *args, "--stack", self.stack, "--non-interactive", "--color", "never"]
        return processes.run(argv, self.env, cwd=str(self.dir))

    def init(self, config: Mapping[str, Any] | None = None) -> "Project":
        processes.run(
            [str(VENV / "bin" / "pulumi"), "stack", "init", self.stack, "--non-interactive"], self.env, str(self.dir)
        )
        if config is not None:
            write_config(self.stack, config, self.dir)
        return self

    def up(self) -> processes.Run:
        return self.pulumi("up", "--yes", "--skip-preview")

    def preview(self) -> processes.Run:
        return self.pulumi("preview")

    def export(self) -> dict[str, Any]:
        """The stack's state with secrets in plain text (`pulumi stack export --show-secrets`)."""
        return json.loads(self.pulumi("stack", "export", "--show-secrets").stdout)


def _project_file(name: str, dir: pathlib.Path, program_config: bool = True) -> None:
    """This project's Pulumi.yaml under another name, on this checkout's virtualenv; without its
    config (the disabled default providers) for a program that is not ours."""
    document = yaml.safe_load((REPO / "Pulumi.yaml").read_text(encoding="utf-8"))
    document["name"] = name
    document["runtime"]["options"]["virtualenv"] = str(VENV)
    if not program_config:
        document.pop("config", None)
    (dir / "Pulumi.yaml").write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


def mesh_project(dir: pathlib.Path, state_dir: pathlib.Path, stack: str) -> Project:
    dir.mkdir(parents=True, exist_ok=True)
    _project_file("istio-mesh", dir)
    for entry in ("__main__.py", "mesh"):
        (dir / entry).symlink_to(REPO / entry)
    return Project(dir, state_dir, stack)


def replay_project(dir: pathlib.Path, mesh: Project, state: dict[str, Any]) -> Project:
    """The mesh stack's own resources registered bare (bench/replay_program.py), on the same
    stack and backend: `state` is its `pulumi stack export --show-secrets` (a lab's throwaway
    keys, in the benchmark's temporary folder)."""
    dir.mkdir(parents=True, exist_ok=True)
    _project_file("istio-mesh", dir)
    shutil.copy(mesh.dir / f"Pulumi.{mesh.stack}.yaml", dir)  # the stack's secrets salt
    shutil.copy(pathlib.Path(__file__).with_name("replay_program.py"), dir / "__main__.py")
    (dir / "bench").symlink_to(REPO / "bench")  # for the state reader it shares with stack_objects
    (dir / "state.json").write_text(json.dumps(state), encoding="utf-8")
    return Project(dir, mesh.state_dir, mesh.stack)


def empty_project(dir: pathlib.Path, state_dir: pathlib.Path, stack: str) -> Project:
    dir.mkdir(parents=True, exist_ok=True)
    _project_file("bench-empty", dir, program_config=False)
    (dir / "__main__.py").write_text(EMPTY_PROGRAM, encoding="utf-8")
    return Project(dir, state_dir, stack)
