"""Our own Go (toolchain/go/: the language host stand-in, the bridged tls and random plugins)
is Go a Go programmer's tools accept: gofmt finds nothing to change, and `go vet` passes on the
modules exactly as toolchain/pulumi.sh builds them (`--write-src`: their go.mod files given
versions.env's versions), offline, from the module cache the toolchain's build filled."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from lab.stack import REPO

GO_DIR = REPO / "toolchain" / "go"


def go_tool(name: str) -> str:
    found = shutil.which(name) or f"/usr/local/go/bin/{name}"
    assert Path(found).exists(), f"{name} not found: setup.sh builds the toolchain with Go, so it must be here"
    return found


def test_gofmt_finds_nothing_to_change():
    done = subprocess.run([go_tool("gofmt"), "-l", "-d", str(GO_DIR)], capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


@pytest.mark.parametrize("module", ["langhost", "tls/tls", "random/random"])
def test_go_vet_passes_on_the_modules_as_built(module, tmp_path):
    go = go_tool("go")
    env = {**os.environ, "PATH": f"{Path(go).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["bash", str(REPO / "toolchain" / "pulumi.sh"), "--write-src", str(tmp_path)], env=env, check=True)
    # Offline: every module the build needed is in the module cache already.
    env.update(GOPROXY="off", GOSUMDB="off", GOFLAGS="-mod=mod -buildvcs=false", GOTOOLCHAIN="local")
    for args in (["mod", "tidy"], ["vet", "./..."]):
        done = subprocess.run([go, *args], cwd=tmp_path / module, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"go {' '.join(args)} in {module}:\n{done.stderr[-3000:]}"
