"""Our own Go (toolchain/go/: the language host stand-in, the bridged tls and random plugins, the
cert-manager controller's main, the lab kubelet API's main) is Go a Go programmer's tools accept:
gofmt finds nothing to change, and `go vet` passes on the modules exactly as toolchain/pulumi.sh,
toolchain/cert-manager.sh and toolchain/kubelet-api.sh build them (`--write-src`: their go.mod
files given versions.env's versions), offline, from the module cache the toolchain's build filled.

A machine that got the Pulumi pieces without building them (an official pulumi, downloaded
plugins) has no module cache for those: there their tests are skipped, saying so. Where setup.sh
built a piece from toolchain/go/ (its stamp is in the cache), they must run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from lab.stack import REPO

GO_DIR = REPO / "toolchain" / "go"
CACHE = Path(os.environ.get("MESH_TOOLCHAIN_CACHE") or Path.home() / ".cache" / "mesh-toolchain")
pytestmark = pytest.mark.toolchain  # our Go as setup.sh builds it


def built_here(piece: str) -> bool:
    """The toolchain built `piece` (langhost, tls, random, cert-manager, kubelet-api) from
    toolchain/go/ here: pulumi.sh keeps a source stamp beside each binary, cert-manager.sh and
    kubelet-api.sh their `.complete` stamps."""
    if piece in ("cert-manager", "kubelet-api"):
        return any(CACHE.glob(f"{piece}-v*/.complete"))
    return any(CACHE.glob(f"*/bin/.source-{piece}"))


def go_tool(name: str) -> str:
    found = shutil.which(name) or f"/usr/local/go/bin/{name}"
    if not Path(found).exists():
        pieces = [p for p in ("langhost", "tls", "random") if built_here(p)]
        assert not pieces, f"{name} not found, yet setup.sh built {pieces} from toolchain/go/ with Go"
        pytest.skip("no Go here, and setup.sh built nothing from toolchain/go/ (see its `toolchain:` lines)")
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
    "kubelet-api": "kubelet-api.sh",
}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_go_vet_passes_on_the_modules_as_built(module, tmp_path):
    go = go_tool("go")
    if not built_here(module.split("/")[0]):
        pytest.skip(f"setup.sh did not build {module} here (got it otherwise): no module cache to vet it offline")
    env = {**os.environ, "PATH": f"{Path(go).parent}{os.pathsep}{os.environ['PATH']}"}
    script = MODULES[module]
    subprocess.run(["bash", str(REPO / "toolchain" / script), "--write-src", str(tmp_path)], env=env, check=True)
    # Offline: every module the build needed is in the module cache already.
    env.update(GOPROXY="off", GOSUMDB="off", GOFLAGS="-mod=mod -buildvcs=false", GOTOOLCHAIN="local")
    if script in ("cert-manager.sh", "kubelet-api.sh"):
        # Those scripts keep their modules and compiled packages in the toolchain cache (as
        # istio.sh does); built as they build them, vet reuses the packages the build compiled.
        env.update(GOMODCACHE=str(CACHE / "go" / "mod"), GOCACHE=str(CACHE / "go" / "build"))
        env.update(CGO_ENABLED="0", GOFLAGS=env["GOFLAGS"] + " -trimpath")
    for args in (["mod", "tidy"], ["vet", "./..."]):
        done = subprocess.run([go, *args], cwd=tmp_path / module, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"go {' '.join(args)} in {module}:\n{done.stderr[-3000:]}"
