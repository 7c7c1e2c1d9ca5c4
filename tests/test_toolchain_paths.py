"""setup.sh takes, per piece, what the machine has: the toolchain scripts run for real (bash),
against a temporary cache, with a real HTTP server on 127.0.0.1 standing in for dl.k8s.io and
etcd's GitHub releases (and for get.pulumi.com, as far as the reachability probe goes), a
closed port standing in for a download site this machine cannot reach, and small scripts
standing in for an official `pulumi` on PATH. No test here builds anything: where the scripts
would build, `--no-build` makes them say so, and Go is hidden (PATH without it, MESH_GO pointing
nowhere) so that a script that tried to build would stop at once."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import platform
import socket
import subprocess
import tarfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from lab.stack import REPO
from lab.toolchain import versions

TOOLCHAIN = REPO / "toolchain"
V = versions()
ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "")
SYSTEM_PATH = "/usr/bin:/bin"
PLUGIN_SDK = {
    "kubernetes": V["PULUMI_KUBERNETES_SDK_VERSION"],
    "tls": V["PULUMI_TLS_SDK_VERSION"],
    "random": V["PULUMI_RANDOM_SDK_VERSION"],
}
PLUGIN_BUILT = {
    "kubernetes": V["PULUMI_KUBERNETES_VERSION"],
    "tls": V["PULUMI_TLS_VERSION"],
    "random": V["PULUMI_RANDOM_VERSION"],
}


@pytest.fixture(autouse=True)
def _system_path_has_no_go_and_no_pulumi():
    for name in ("go", "pulumi"):
        assert not any((Path(d) / name).exists() for d in SYSTEM_PATH.split(":")), f"{name} in {SYSTEM_PATH}"


class ReleaseSite:
    """A real HTTP server on 127.0.0.1 serving a folder: the stand-in for dl.k8s.io, etcd's
    GitHub releases and get.pulumi.com."""

    def __init__(self, root: Path):
        self.root = root
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Closed, not only stopped: a later connection is refused rather than left waiting."""
        self.server.shutdown()
        self.server.server_close()

    def put(self, relative: str, content: bytes) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def site(tmp_path):
    served = ReleaseSite(tmp_path / "site")
    yield served
    served.stop()


def closed_port_url() -> str:
    """A download site nobody answers for: a port just bound and released (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def script(text: str) -> bytes:
    return ("#!/bin/sh\n" + text + "\n").encode()


def publish_kubernetes(site: ReleaseSite) -> dict[str, bytes]:
    """The three binaries and their .sha256 files, laid out as dl.k8s.io lays them out."""
    binaries = {}
    for name in ("kube-apiserver", "kube-controller-manager", "kubectl"):
        binaries[name] = script(f"echo {name} from the stand-in release site")
        base = f"v{V['KUBERNETES_VERSION']}/bin/linux/{ARCH}/{name}"
        site.put(base, binaries[name])
        site.put(base + ".sha256", sha256(binaries[name]).encode())
    return binaries


def publish_etcd(site: ReleaseSite, tmp_path: Path) -> bytes:
    """etcd's release tarball and the release's SHA256SUMS, laid out as GitHub releases are."""
    name = f"etcd-v{V['ETCD_VERSION']}-linux-{ARCH}"
    etcd = script("echo etcd from the stand-in release site")
    staged = tmp_path / "etcd-tarball" / name
    staged.mkdir(parents=True)
    for tool in ("etcd", "etcdctl"):
        (staged / tool).write_bytes(etcd if tool == "etcd" else script("echo etcdctl"))
        (staged / tool).chmod(0o755)
    tarball = tmp_path / "etcd-tarball" / f"{name}.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(staged, arcname=name)
    content = tarball.read_bytes()
    site.put(f"v{V['ETCD_VERSION']}/{name}.tar.gz", content)
    other = sha256(b"another file")
    site.put(
        f"v{V['ETCD_VERSION']}/SHA256SUMS", f"{other}  etcd-other.zip\n{sha256(content)}  {name}.tar.gz\n".encode()
    )
    return etcd


def env_for(tmp_path: Path, *path_dirs: Path, **extra: str) -> dict[str, str]:
    """A machine with no Go: PATH is the system's folders (neither go nor pulumi) plus `path_dirs`."""
    return {
        "PATH": ":".join([*map(str, path_dirs), SYSTEM_PATH]),
        "HOME": str(tmp_path / "home"),
        "MESH_TOOLCHAIN_CACHE": str(tmp_path / "cache"),
        "MESH_GO": str(tmp_path / "no-go-here" / "go"),
        **extra,
    }


def run(script_name: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """A toolchain script, reporting every piece as under setup.sh (install.sh asks for that)."""
    return subprocess.run(
        ["bash", str(TOOLCHAIN / script_name), *args],
        env={"MESH_TOOLCHAIN_REPORT": "all", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def report_lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("toolchain: ")]


# -- kube-apiserver, kube-controller-manager, kubectl, etcd -----------------------------------


def test_the_release_binaries_are_downloaded_verified_and_reported_and_need_no_go(site, tmp_path):
    binaries = publish_kubernetes(site)
    etcd = publish_etcd(site, tmp_path)
    env = env_for(tmp_path, MESH_K8S_RELEASE_URL=site.url, MESH_ETCD_RELEASE_URL=site.url)
    done = run("kubernetes.sh", env)
    assert done.returncode == 0, done.stderr
    cache = tmp_path / "cache"
    k8s, etcd_home = cache / f"kubernetes-v{V['KUBERNETES_VERSION']}", cache / f"etcd-v{V['ETCD_VERSION']}"
    # stdout: the bin dirs lab/toolchain.py reads, as before.
    assert done.stdout.split() == [str(k8s / "bin"), str(etcd_home / "bin")]
    for name, content in binaries.items():
        assert (k8s / "bin" / name).read_bytes() == content and os.access(k8s / "bin" / name, os.X_OK)
    assert (etcd_home / "bin" / "etcd").read_bytes() == etcd and os.access(etcd_home / "bin" / "etcd", os.X_OK)
    assert (k8s / ".complete").exists() and (etcd_home / ".complete").exists()
    k8s_url = f"{site.url}/v{V['KUBERNETES_VERSION']}/bin/linux/{ARCH}"
    etcd_url = f"{site.url}/v{V['ETCD_VERSION']}/etcd-v{V['ETCD_VERSION']}-linux-{ARCH}.tar.gz"
    assert (k8s / ".origin").read_text() == f"downloaded from {k8s_url}, sha256 verified\n"
    assert report_lines(done) == [
        f"toolchain: etcd v{V['ETCD_VERSION']}: downloaded from {etcd_url}, sha256 verified",
        f"toolchain: kube-apiserver, kube-controller-manager, kubectl v{V['KUBERNETES_VERSION']}: "
        f"downloaded from {k8s_url}, sha256 verified",
    ]
    assert "Go" not in done.stderr

    # A later run reports the same from the cache, without asking the site again.
    site.stop()
    gone = closed_port_url()
    again = run("kubernetes.sh", {**env, "MESH_K8S_RELEASE_URL": gone, "MESH_ETCD_RELEASE_URL": gone}, "--print-env")
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"export PATH={k8s}/bin:{etcd_home}/bin:$PATH\n"
    assert [line.endswith(", sha256 verified (cached)") for line in report_lines(again)] == [True, True]


@pytest.mark.parametrize("tampered", ["kubectl.sha256", "etcd tarball"])
def test_a_checksum_mismatch_is_refused_and_nothing_is_installed(site, tmp_path, tampered):
    publish_kubernetes(site)
    publish_etcd(site, tmp_path)
    if tampered == "kubectl.sha256":
        site.put(f"v{V['KUBERNETES_VERSION']}/bin/linux/{ARCH}/kubectl.sha256", b"0" * 64)
        folder = f"kubernetes-v{V['KUBERNETES_VERSION']}"
    else:
        site.put(f"v{V['ETCD_VERSION']}/etcd-v{V['ETCD_VERSION']}-linux-{ARCH}.tar.gz", b"not the release")
        folder = f"etcd-v{V['ETCD_VERSION']}"
    env = env_for(tmp_path, MESH_K8S_RELEASE_URL=site.url, MESH_ETCD_RELEASE_URL=site.url)
    done = run("kubernetes.sh", env)
    assert done.returncode == 1, done.stderr
    assert "REFUSED, nothing installed: checksum mismatch" in done.stderr
    assert done.stdout == ""
    assert not (tmp_path / "cache" / folder).exists()
    assert not list((tmp_path / "cache").glob("*.download"))
    assert "no Go toolchain" not in done.stderr  # refused: it does not fall back to a build by itself


@pytest.mark.parametrize("where", ["unreachable", "not published"])
def test_downloads_that_cannot_be_had_fall_back_to_building(site, tmp_path, where):
    url = closed_port_url() if where == "unreachable" else site.url  # the stand-in serves nothing yet
    env = env_for(tmp_path, MESH_K8S_RELEASE_URL=url, MESH_ETCD_RELEASE_URL=url)
    done = run("kubernetes.sh", env, "--no-build")
    assert done.returncode == 3, done.stderr
    lines = report_lines(done)
    assert [line.split(": ")[1] for line in lines] == [
        f"etcd v{V['ETCD_VERSION']}",
        f"kube-apiserver, kube-controller-manager, kubectl v{V['KUBERNETES_VERSION']}",
    ]
    cause = "unreachable: curl: (7)" if where == "unreachable" else "returned error: 404"
    assert all("would be built from Go modules (" in line and cause in line for line in lines), lines
    assert not list((tmp_path / "cache").glob("*/.complete"))


def test_no_go_toolchain_is_an_error_only_when_something_must_be_built_and_names_it(tmp_path):
    url = closed_port_url()
    done = run("kubernetes.sh", env_for(tmp_path, MESH_K8S_RELEASE_URL=url, MESH_ETCD_RELEASE_URL="none"))
    assert done.returncode == 1
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("toolchain: error: no Go toolchain found")
    assert f"etcd v{V['ETCD_VERSION']} (downloads turned off: MESH_ETCD_RELEASE_URL=none)" in error
    assert f"kubectl v{V['KUBERNETES_VERSION']} ({url.removeprefix('http://')} unreachable" in error


# -- the Pulumi CLI and the plugins -----------------------------------------------------------

FAKE_PULUMI = textwrap.dedent("""\
    #!/bin/sh
    # Stands in for an official pulumi: its version, and `plugin install` as Pulumi's acquisition
    # does it (into $PULUMI_HOME/plugins), or failing, or hanging, as FAKE_PLUGIN_INSTALL says.
    echo "$*" >>"$FAKE_PULUMI_LOG"
    case "$1 $2" in
      version*) echo "$FAKE_PULUMI_VERSION" ;;
      "plugin install")
        case "$FAKE_PLUGIN_INSTALL" in
          fail) echo "error: could not get plugin $4 v$5: 403 from the stand-in" >&2; exit 1 ;;
          hang) sleep 30 ;;
        esac
        dir="$PULUMI_HOME/plugins/resource-$4-v$5"
        mkdir -p "$dir" && printf '#!/bin/sh\\n' >"$dir/pulumi-resource-$4" && chmod +x "$dir/pulumi-resource-$4" ;;
      "plugin ls") echo "NAME  KIND  VERSION" ;;
    esac
""")


def fake_pulumi(folder: Path, *, language_host: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pulumi").write_text(FAKE_PULUMI)
    names = ["pulumi"] + (["pulumi-language-python"] if language_host else [])
    if language_host:
        (folder / "pulumi-language-python").write_text("#!/bin/sh\n")
    for name in names:
        (folder / name).chmod(0o755)
    return folder


def pulumi_env(tmp_path, *path_dirs, version="v3.270.0", install="ok", probe=None, **extra):
    return env_for(
        tmp_path,
        *path_dirs,
        FAKE_PULUMI_VERSION=version,
        FAKE_PLUGIN_INSTALL=install,
        FAKE_PULUMI_LOG=str(tmp_path / "pulumi-calls.log"),
        MESH_PLUGIN_PROBE_URLS=probe or closed_port_url(),
        **extra,
    )


def calls(tmp_path) -> list[str]:
    log = tmp_path / "pulumi-calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_an_official_pulumi_on_path_is_taken_and_the_plugins_come_from_pulumi_plugin_install(site, tmp_path):
    official = fake_pulumi(tmp_path / "official" / "bin")
    env = pulumi_env(tmp_path, official, probe=site.url)  # the stand-in answers for get.pulumi.com
    done = run("pulumi.sh", env, "--print-env")
    assert done.returncode == 0, done.stderr
    home = tmp_path / "cache" / "pulumi-home"
    # Only the official CLI's folder goes on PATH: no CLI of ours, and no built plugin.
    assert done.stdout == (
        f'export PATH="{official}:$PATH"; export PULUMI_HOME="{home}"; export PULUMI_SKIP_UPDATE_CHECK=true\n'
    )
    assert [c for c in calls(tmp_path) if c.startswith("plugin install")] == [
        f"plugin install resource {name} {version}" for name, version in PLUGIN_SDK.items()
    ]
    for name, version in PLUGIN_SDK.items():
        assert (home / "plugins" / f"resource-{name}-v{version}" / f"pulumi-resource-{name}").exists()
    assert report_lines(done) == [
        f"toolchain: pulumi CLI v3.270.0: official, {official}/pulumi, with its pulumi-language-python",
        *(
            f"toolchain: plugin {name} {version}: downloaded by pulumi plugin install, from PULUMI_HOME by exact version"
            for name, version in PLUGIN_SDK.items()
        ),
    ]
    assert not list((tmp_path / "cache").glob("pulumi-v*")) and not list((tmp_path / "cache").glob("pulumi-resource-*"))

    # A later run takes the plugins from PULUMI_HOME as recorded: no probe, no second install.
    site.stop()
    (tmp_path / "pulumi-calls.log").unlink()
    again = run("pulumi.sh", {**env, "MESH_PLUGIN_PROBE_URLS": closed_port_url()}, "--print-env")
    assert again.returncode == 0, again.stderr
    assert again.stdout == done.stdout
    assert calls(tmp_path) == ["version"]
    assert all(line.endswith("(cached)") for line in report_lines(again)[1:])


@pytest.mark.parametrize(
    ("version", "language_host", "reason"),
    [
        ("v3.100.0", True, f"pulumi 3.100.0 on PATH is older than {V['PULUMI_VERSION']}"),
        (f"v{V['PULUMI_VERSION']}-alpha.1", True, f"pulumi {V['PULUMI_VERSION']}-alpha.1 on PATH is older than"),
        ("v3.270.0", False, "pulumi 3.270.0 at {official}/pulumi has no pulumi-language-python beside it"),
        (None, True, "no pulumi on PATH"),
    ],
)
def test_a_pulumi_that_does_not_qualify_is_refused_with_the_reason(tmp_path, version, language_host, reason):
    official = fake_pulumi(tmp_path / "official" / "bin", language_host=language_host)
    path = [official] if version else []
    done = run("pulumi.sh", pulumi_env(tmp_path, *path, version=version or ""), "--print-env", "--no-build")
    assert done.returncode == 3, done.stderr
    assert done.stdout == ""
    cli = report_lines(done)[0]
    assert cli.startswith(f"toolchain: pulumi CLI v{V['PULUMI_VERSION']}: would be built from Go modules (")
    assert reason.format(official=official) in cli


def test_exactly_the_pinned_version_qualifies(tmp_path):
    official = fake_pulumi(tmp_path / "official" / "bin")
    done = run("pulumi.sh", pulumi_env(tmp_path, official, version=f"v{V['PULUMI_VERSION']}"), "--no-build")
    assert report_lines(done)[0].startswith(f"toolchain: pulumi CLI v{V['PULUMI_VERSION']}: official, {official}/")


def test_a_pulumi_on_path_that_is_a_build_of_ours_is_not_taken_for_an_official_one(tmp_path):
    ours = fake_pulumi(tmp_path / "cache" / "somewhere" / "bin")
    on_path = tmp_path / "on-path"
    on_path.mkdir()
    for name in ("pulumi", "pulumi-language-python"):
        (on_path / name).symlink_to(ours / name)
    done = run("pulumi.sh", pulumi_env(tmp_path, on_path), "--print-env", "--no-build")
    assert done.returncode == 3
    assert f"({on_path}/pulumi is a build of ours)" in report_lines(done)[0]


@pytest.mark.parametrize("install", ["fail", "hang"])
def test_a_plugin_pulumi_cannot_install_falls_back_to_the_build(site, tmp_path, install):
    official = fake_pulumi(tmp_path / "official" / "bin")
    env = pulumi_env(tmp_path, official, install=install, probe=site.url, MESH_PLUGIN_INSTALL_TIMEOUT="1")
    started = time.monotonic()
    done = run("pulumi.sh", env, "--print-env", "--no-build")
    assert done.returncode == 3, done.stderr
    assert time.monotonic() - started < 20  # bounded: 1 s per plugin here, not the fake's 30 s
    lines = report_lines(done)
    assert lines[0].startswith("toolchain: pulumi CLI v3.270.0: official")
    for line, (name, version) in zip(lines[1:], PLUGIN_SDK.items(), strict=True):
        cause = (
            f"pulumi plugin install {name} {version} failed: error: could not get plugin {name} v{version}: 403"
            if install == "fail"
            else f"pulumi plugin install {name} {version} timed out after 1 s"
        )
        assert line.startswith(f"toolchain: plugin {name} {PLUGIN_BUILT[name]}: would be built from Go modules (")
        assert cause in line
    assert not (tmp_path / "cache" / "origins").exists() or not list((tmp_path / "cache" / "origins").iterdir())


def test_unreachable_plugin_sites_are_not_asked_plugin_by_plugin(tmp_path):
    official = fake_pulumi(tmp_path / "official" / "bin")
    probe = f"{closed_port_url()} {closed_port_url()}"  # stand-ins for get.pulumi.com and api.github.com
    done = run("pulumi.sh", pulumi_env(tmp_path, official, probe=probe), "--print-env", "--no-build")
    assert done.returncode == 3
    assert not [c for c in calls(tmp_path) if c.startswith("plugin install")]
    assert all(" unreachable: curl: (7)" in line for line in report_lines(done)[1:])


def built_cache(tmp_path: Path) -> Path:
    """A cache as a build here leaves it (stand-in binaries in its layout, its source stamps):
    the CLI of ours, the three plugins built, and installed into PULUMI_HOME at their versions."""
    cache = tmp_path / "cache"
    stamp = {
        piece: subprocess.run(
            ["bash", "-c", f'source "{TOOLCHAIN}/pulumi.sh"; source_stamp {piece}'],
            env={"PATH": SYSTEM_PATH, "HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for piece in ("langhost", "tls", "random")
    }
    cli = fake_pulumi(cache / f"pulumi-v{V['PULUMI_VERSION']}" / "bin")
    (cli / ".source-langhost").write_text(stamp["langhost"] + "\n")
    for name, version in PLUGIN_BUILT.items():
        bin_dir = cache / f"pulumi-resource-{name}-v{version}" / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / f"pulumi-resource-{name}").write_bytes(script(f"echo {name}"))
        (bin_dir / f"pulumi-resource-{name}").chmod(0o755)
        if name in stamp:
            (bin_dir / f".source-{name}").write_text(stamp[name] + "\n")
        installed = cache / "pulumi-home" / "plugins" / f"resource-{name}-v{version}"
        installed.mkdir(parents=True)
        (installed / f"pulumi-resource-{name}").write_bytes(script(f"echo {name}"))
    return cache


def test_here_a_cache_of_builds_is_used_and_the_built_plugins_go_on_path(tmp_path):
    cache = built_cache(tmp_path)
    env = pulumi_env(tmp_path, version="v3.259.0")  # no pulumi on PATH; the sites unreachable
    done = run("pulumi.sh", env, "--print-env", "--no-build")
    assert done.returncode == 0, done.stderr
    plugin_dirs = [cache / f"pulumi-resource-{name}-v{version}" / "bin" for name, version in PLUGIN_BUILT.items()]
    path = ":".join(map(str, [cache / f"pulumi-v{V['PULUMI_VERSION']}" / "bin", *plugin_dirs]))
    assert done.stdout.startswith(f'export PATH="{path}:$PATH"; ')
    lines = report_lines(done)
    assert (
        lines[0] == f"toolchain: pulumi CLI v{V['PULUMI_VERSION']}: built from Go modules (no pulumi on PATH) (cached)"
    )
    assert lines[1].startswith("toolchain: pulumi-language-python: our stand-in")
    for line, (name, version) in zip(lines[2:], PLUGIN_BUILT.items(), strict=True):
        assert line.startswith(f"toolchain: plugin {name}: built {version}, on PATH (")
        assert " unreachable: curl: (7)" in line and line.endswith(") (cached)")
    assert not [c for c in calls(tmp_path) if c.startswith("plugin install resource")]


def test_install_links_the_official_cli_and_drops_a_plugin_link_left_from_a_build(site, tmp_path):
    """install.sh with the Kubernetes, Istio, cert-manager, kubelet API, actionlint and OpenShift steps stubbed (they print a
    folder), the real pulumi.sh, a fake official pulumi and plugins pulumi can install."""
    toolchain = tmp_path / "repo" / "toolchain"
    toolchain.mkdir(parents=True)
    for name in ("install.sh", "pulumi.sh", "lib.sh", "versions.sh", "versions.env"):
        (toolchain / name).write_bytes((TOOLCHAIN / name).read_bytes())
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "kubectl").write_bytes(script("echo kubectl"))
    (tools / "kubectl").chmod(0o755)
    for name in (
        "kubernetes.sh",
        "istio.sh",
        "cert-manager.sh",
        "kubelet-api.sh",
        "actionlint.sh",
        "openshift-crds.sh",
    ):
        (toolchain / name).write_text(f"echo {tools}\n")
    # sail-operator.sh prints the operator's source; its binary is in ../bin beside it.
    sail = tmp_path / "sail-operator"
    (sail / "src" / "chart" / "crds").mkdir(parents=True)
    (sail / "bin").mkdir()
    (sail / "bin" / "sail-operator").write_bytes(script("echo operator"))
    (sail / "bin" / "sail-operator").chmod(0o755)
    (toolchain / "sail-operator.sh").write_text(f"echo {sail / 'src'}\n")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "pulumi-resource-kubernetes").symlink_to(tmp_path / "cache" / "an-earlier-build")
    official = fake_pulumi(tmp_path / "official" / "bin")
    done = subprocess.run(
        ["bash", str(toolchain / "install.sh"), str(venv)],
        env=pulumi_env(tmp_path, official, probe=site.url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    links = {p.name: os.readlink(p) for p in (venv / "bin").iterdir()}
    assert links == {
        "kubectl": str(tools / "kubectl"),
        "pulumi": str(official / "pulumi"),
        "pulumi-language-python": str(official / "pulumi-language-python"),
        "sail-operator": f"{sail / 'src'}/../bin/sail-operator",
    }
    assert os.readlink(venv / "crds") == f"{sail / 'src'}/chart/crds"
    assert os.readlink(venv / "pulumi-home") == str(tmp_path / "cache" / "pulumi-home")


@pytest.mark.integration
def test_after_setup_nothing_is_left_to_build_and_each_piece_says_how_it_was_got():
    """The machine's own cache as setup.sh left it (here: builds; on a laptop: mostly downloads)."""
    kubernetes = run("kubernetes.sh", dict(os.environ), "--no-build")
    assert kubernetes.returncode == 0, kubernetes.stderr
    assert [line.endswith("(cached)") for line in report_lines(kubernetes)] == [True, True]
    pulumi = run("pulumi.sh", dict(os.environ), "--print-env", "--no-build")
    assert pulumi.returncode == 0, pulumi.stderr
    lines = report_lines(pulumi)
    assert lines[0].startswith("toolchain: pulumi CLI v") and (": official, " in lines[0] or "built from" in lines[0])
    plugins = [line for line in lines if line.startswith("toolchain: plugin ")]
    assert len(plugins) == 3, lines
    for line, (name, sdk_version) in zip(plugins, PLUGIN_SDK.items(), strict=True):
        assert line.startswith(
            (f"toolchain: plugin {name} {sdk_version}: downloaded by ", f"toolchain: plugin {name}: built ")
        ), line


@pytest.mark.integration
def test_the_lab_hears_of_the_toolchain_only_when_it_has_work_to_do():
    """The lab runs the scripts on every start: a piece the cache has says nothing there."""
    quiet = subprocess.run(
        ["bash", str(TOOLCHAIN / "kubernetes.sh")],
        env={k: v for k, v in os.environ.items() if k != "MESH_TOOLCHAIN_REPORT"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (quiet.returncode, quiet.stderr) == (0, "")
    assert len(quiet.stdout.split()) == 2  # the two bin dirs, as lab/toolchain.py reads them


# --- the Sail operator's source (its CRDs are the lab's) -----------------------------------------


def sail_toolchain(tmp_path: Path, commit: str) -> Path:
    """toolchain/sail-operator.sh with its helpers, pinned to `commit`."""
    toolchain = tmp_path / "repo" / "toolchain"
    toolchain.mkdir(parents=True)
    for name in ("sail-operator.sh", "lib.sh", "versions.sh"):
        (toolchain / name).write_bytes((TOOLCHAIN / name).read_bytes())
    (toolchain / "versions.env").write_text(f"SAIL_OPERATOR_COMMIT={commit}\nSAIL_OPERATOR_REPLACES=a@v1\n")
    return toolchain


def sail_run(toolchain: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(toolchain / "sail-operator.sh"), "--source-only"],
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "MESH_TOOLCHAIN_CACHE": str(tmp_path / "cache"),
             "MESH_TOOLCHAIN_REPORT": "all", **env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_sail_operator_comes_from_its_public_home_at_the_pinned_commit(tmp_path):
    home = tmp_path / "home"
    (home / "chart" / "crds").mkdir(parents=True)
    (home / "chart" / "crds" / "sailoperator.io_istios.yaml").write_text("kind: CustomResourceDefinition\n")
    git = ["git", "-C", str(home), "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (
        ["init", "-q"],
        ["add", "."],
        ["commit", "-qm", "crds"],
        ["config", "uploadpack.allowAnySHA1InWant", "true"],
    ):
        subprocess.run([*git, *args], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    toolchain = sail_toolchain(tmp_path, commit)
    done = sail_run(
        toolchain, tmp_path, MESH_SAIL_OPERATOR_URL=f"file://{home}", MESH_UPSTREAM_DIR=str(tmp_path / "none")
    )
    assert done.returncode == 0, done.stderr
    out = Path(done.stdout.strip())
    assert out == tmp_path / "cache" / f"sail-operator-{commit[:9]}" / "src"
    assert (out / "chart" / "crds" / "sailoperator.io_istios.yaml").exists() and not (out / ".git").exists()
    assert (
        done.stderr
        == f"toolchain: Sail operator source {commit[:9]}: from its public home (file://{home}, commit {commit})\n"
    )
    again = sail_run(toolchain, tmp_path, MESH_SAIL_OPERATOR_URL="file:///nowhere")
    assert again.stdout == done.stdout and again.stderr.endswith(f"commit {commit}) (cached)\n"), again.stderr


def test_where_its_home_cannot_be_reached_the_snapshot_beside_the_checkout_serves(tmp_path):
    commit = "328df99dc9fc973a7dd0c6442145dc86459a1481"
    toolchain = sail_toolchain(tmp_path, commit)
    upstream = tmp_path / "upstream"
    source = tmp_path / "snapshot" / "sail-operator" / "chart" / "crds"
    source.mkdir(parents=True)
    (source / "sailoperator.io_istios.yaml").write_text("kind: CustomResourceDefinition\n")
    (upstream / "sail-operator").mkdir(parents=True)
    with tarfile.open(upstream / "sail-operator" / f"sail-operator-{commit[:9]}.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "snapshot" / "sail-operator", arcname="sail-operator")
    unreachable = {"MESH_SAIL_OPERATOR_URL": "file:///nowhere"}
    missing = sail_run(toolchain, tmp_path, **unreachable, MESH_UPSTREAM_DIR=str(tmp_path / "none"))
    assert missing.returncode == 1
    assert "file:///nowhere cannot be had" in missing.stderr and "there is no snapshot at" in missing.stderr
    done = sail_run(toolchain, tmp_path, **unreachable, MESH_UPSTREAM_DIR=str(upstream))
    assert done.returncode == 0, done.stderr
    assert (Path(done.stdout.strip()) / "chart" / "crds" / "sailoperator.io_istios.yaml").exists()
    assert done.stderr.startswith(f"toolchain: Sail operator source {commit[:9]}: from the snapshot of commit")
