"""Our own Go (toolchain/go/: the language host stand-in, the bridged tls and random plugins, the
cert-manager controller's main) is Go a Go programmer's tools accept: gofmt finds nothing to
change, and `go vet` passes on the modules exactly as toolchain/pulumi.sh and
toolchain/cert-manager.sh build them (`--write-src`: their go.mod files given versions.env's
versions), offline, from the module cache the toolchain's build filled."""

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


# The module (its folder under --write-src's DIR) and the script that builds it.
MODULES = {
    "langhost": "pulumi.sh",
    "tls/tls": "pulumi.sh",
    "random/random": "pulumi.sh",
    "cert-manager": "cert-manager.sh",
}
TOOLCHAIN_CACHE = Path(os.environ.get("MESH_TOOLCHAIN_CACHE") or Path.home() / ".cache" / "mesh-toolchain")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_go_vet_passes_on_the_modules_as_built(module, tmp_path):
    go = go_tool("go")
    env = {**os.environ, "PATH": f"{Path(go).parent}{os.pathsep}{os.environ['PATH']}"}
    script = MODULES[module]
    subprocess.run(["bash", str(REPO / "toolchain" / script), "--write-src", str(tmp_path)], env=env, check=True)
    # Offline: every module the build needed is in the module cache already.
    env.update(GOPROXY="off", GOSUMDB="off", GOFLAGS="-mod=mod -buildvcs=false", GOTOOLCHAIN="local")
    if script == "cert-manager.sh":
        # That script keeps its modules and compiled packages in the toolchain cache (as istio.sh
        # does); built as it builds them, vet reuses the packages the build compiled.
        env.update(GOMODCACHE=str(TOOLCHAIN_CACHE / "go" / "mod"), GOCACHE=str(TOOLCHAIN_CACHE / "go" / "build"))
        env.update(CGO_ENABLED="0", GOFLAGS=env["GOFLAGS"] + " -trimpath")
    for args in (["mod", "tidy"], ["vet", "./..."]):
        done = subprocess.run([go, *args], cwd=tmp_path / module, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"go {' '.join(args)} in {module}:\n{done.stderr[-3000:]}"
