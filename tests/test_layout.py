"""Boundaries of the code, checked: planning, config and `mesh verify` are Pulumi-free; only the
program's entry reads the clock, the stack's outputs and the network."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

from .conftest import REPO

PULUMI_FREE = ["mesh.config", "mesh.cli", "mesh.verify"] + [
    f"mesh.plan.{path.stem}" for path in sorted((REPO / "mesh" / "plan").glob("*.py")) if path.stem != "__init__"
]


def test_planning_config_and_verify_import_no_pulumi():
    probe = (
        "import importlib, sys\n"
        f"for name in {PULUMI_FREE!r}: importlib.import_module(name)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0].startswith('pulumi')}))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout


def _sources(folder: pathlib.Path):
    return {path.relative_to(REPO).as_posix(): path.read_text(encoding="utf-8") for path in folder.rglob("*.py")}


def test_only_the_entry_reads_the_clock_the_network_and_the_stack():
    # The clock; the network (sockets, urllib's requests, http.client, the Kubernetes client); the
    # stack's config and outputs.
    outside = re.compile(
        r"datetime\.(datetime\.)?now\(|socket\.|urllib\.request|urlopen\(|http\.client|^\s*import kubernetes"
        r"|^\s*from kubernetes\b|StackReference\(|pulumi\.Config\(|CONFIG\.get\(",
        re.MULTILINE,
    )
    readers = {
        path
        for path, text in _sources(REPO / "mesh").items()
        if outside.search(text) and not path.startswith("mesh/verify/") and path != "mesh/cli.py"
    }
    # The entry, and what the entry runs beside the engine while `up` applies the resources (it
    # reads the Sail operator's answers: mesh/operator_watch.py); nothing the plan or components use.
    assert readers == {"mesh/program.py", "mesh/operator_watch.py"}, readers


def test_components_take_name_args_opts():
    signature = re.compile(r"class (\w+)\(pulumi\.ComponentResource\):.*?def __init__\(([^)]*)\)", re.S)
    found = {}
    for path, text in _sources(REPO / "mesh").items():
        for name, parameters in signature.findall(text):
            found[name] = [p.split(":")[0].strip() for p in parameters.split(",") if p.strip()]
    assert len(found) >= 8, found
    assert {name: params for name, params in found.items() if params != ["self", "name", "args", "opts"]} == {}
