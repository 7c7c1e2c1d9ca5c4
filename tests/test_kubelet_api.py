"""The lab node's kubelet HTTPS API (toolchain/go/kubelet-api, built by toolchain/kubelet-api.sh)
on its own, no cluster: the real binary, driven as the kube-apiserver drives a kubelet for
`kubectl exec` (a websocket speaking `v4.channel.k8s.io`, which virtual-kubelet's remotecommand
server accepts beside SPDY) and `kubectl logs` (GET /containerLogs), with a client certificate.

The pod is what the node agent leaves for it: a pod.json in the pods dir and a named network
namespace made here with `ip netns add` (and always deleted). Certificates from the openssl CLI:
a serving CA, a client CA (as --kubelet-client-certificate's), and a stranger's CA.

Needs root (network namespaces, setpriv), as the lab's node agent does.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
import websocket

from lab import procs
from lab.toolchain import kubelet_api_binaries

NAMESPACE, POD = "sample", "sleep-7d9c-abcde"
GREETING = "hello from pod.json"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STDOUT, STDERR, STATUS, RESIZE = 1, 2, 3, 4
pytestmark = pytest.mark.toolchain  # the kubelet API binary setup.sh builds

RESOLV_CONF = "search sample.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\n"


@pytest.fixture(scope="module")
def binary() -> str:
    """lab-kubelet-api as the lab finds it (rebuilt by toolchain/kubelet-api.sh if its Go changed).
    The module is marked `toolchain`: where setup.sh has not run, deselect it; it never skips."""
    assert (Path(sys.executable).parent / "lab-kubelet-api").exists(), (
        "lab-kubelet-api is not in .venv/bin: run setup.sh (toolchain/kubelet-api.sh builds it)"
    )
    return kubelet_api_binaries()["lab-kubelet-api"]


def _openssl(*args: str) -> None:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """serving-ca, client-ca and stranger-ca; the server's certificate for 127.0.0.1 (serving-ca),
    the API server's client certificate (client-ca) and one the server must not take (stranger-ca)."""
    d: Path = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("serving-ca", "client-ca", "stranger-ca"):
        _openssl("req", "-x509", *ec, "-keyout", str(d / f"{ca}.key"), "-out", str(d / f"{ca}.crt"),
                 "-subj", f"/CN={ca}", "-days", "1")  # fmt: skip
    for name, ca, subject, ext in (
        ("server", "serving-ca", "/CN=lab-node", "subjectAltName=IP:127.0.0.1"),
        ("client", "client-ca", "/O=kubelet-api-admin/CN=kube-apiserver-kubelet-client", "extendedKeyUsage=clientAuth"),
        ("stranger", "stranger-ca", "/CN=kube-apiserver-kubelet-client", "extendedKeyUsage=clientAuth"),
    ):
        _openssl("req", "-x509", "-CA", str(d / f"{ca}.crt"), "-CAkey", str(d / f"{ca}.key"), *ec,
                 "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.crt"), "-subj", subject,
                 "-addext", ext, "-addext", "basicConstraints=critical,CA:FALSE", "-days", "1")  # fmt: skip
    return d


@pytest.fixture(scope="module")
def netns():
    """A named network namespace of the test's own (only `lo`, down), deleted whatever happens."""
    if os.geteuid() != 0:
        pytest.fail("the kubelet API runs commands in network namespaces: run the tests as root, as the lab")
    name = f"kapitest-{uuid.uuid4().hex[:8]}"
    etc = Path("/etc/netns") / name  # what `ip netns exec` mounts over /etc's files: the pod's DNS
    try:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        etc.mkdir(parents=True)
        (etc / "resolv.conf").write_text(RESOLV_CONF)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)
        shutil.rmtree(etc, ignore_errors=True)


def write_atomically(path: Path, document: dict) -> None:
    """As the node agent writes pod.json: a temp file, then a rename."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(document))
    temp.rename(path)


@dataclass
class Node:
    port: int
    pki: Path
    pods: Path
    pod_dir: Path
    root: Path
    netns: str
    log: Path
    pid: int

    def pod(self) -> dict:
        return json.loads((self.pod_dir / "pod.json").read_text())

    def write_pod(self, pod: dict) -> None:
        write_atomically(self.pod_dir / "pod.json", pod)


def start_node(binary: str, pki: Path, netns: str, base: Path) -> Node:
    """Writes a pod.json (three containers) and starts the server; back once /healthz answers."""
    pods, root = base / "pods", base / "root"
    pod_dir = pods / f"{NAMESPACE}.{POD}"
    pod_dir.mkdir(parents=True)
    root.mkdir()
    logs = base / "logs"
    logs.mkdir()
    (logs / "sleep.log").write_text("one\ntwo\nthree\nfour\n")
    (logs / "sleep.previous.log").write_text("the container before the restart\n")
    container = {"env": {}, "uid": 0, "gid": 0, "running": True}
    pod = {
        "namespace": NAMESPACE, "name": POD, "netns": netns, "root": str(root),
        "containers": {
            "sleep": {**container, "log": str(logs / "sleep.log"), "previousLog": str(logs / "sleep.previous.log"),
                      "env": {"GREETING": GREETING}},
            "app": {**container, "log": str(logs / "app.log"), "previousLog": "", "uid": 1000, "gid": 1000,
                    "env": {"PATH": "/usr/bin:/bin"}},
            "stopped": {**container, "log": str(logs / "stopped.log"), "previousLog": "", "running": False},
        },
    }  # fmt: skip
    write_atomically(pod_dir / "pod.json", pod)
    port = procs.free_port(set())
    log = base / "kubelet-api.log"
    argv = [binary, "--listen", f"127.0.0.1:{port}", "--cert", str(pki / "server.crt"), "--key",
            str(pki / "server.key"), "--client-ca", str(pki / "client-ca.crt"), "--pods-dir", str(pods)]  # fmt: skip
    # Nothing of the test's environment, so that the exec tests see what the server passes on.
    pid = procs.start(argv, log, env={"PATH": os.environ["PATH"], "SECRET_OF_THE_SERVER": "leaked"}, cwd=base)
    node = Node(port, pki, pods, pod_dir, root, netns, log, pid)
    deadline = time.monotonic() + 20
    while True:
        try:
            if get(node, "/healthz", client_cert=False) == (200, "ok"):
                return node
        except OSError:
            pass
        assert procs.alive(pid, str(pods)) and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


@pytest.fixture(scope="module")
def node(binary, pki, netns, tmp_path_factory):
    node = start_node(binary, pki, netns, tmp_path_factory.mktemp("node"))
    try:
        yield node
    finally:
        procs.stop([node.pid], str(node.pods))
    assert "msg=stopped" in node.log.read_text(), "SIGTERM should be a clean stop"
    assert netns_pids(node.netns) == [], "no exec may outlive the server"


def tls_context(node: Node, cert: str | None = "client") -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=node.pki / "serving-ca.crt")
    if cert:
        context.load_cert_chain(node.pki / f"{cert}.crt", node.pki / f"{cert}.key")
    return context


def get(node: Node, path: str, client_cert: bool = True, cert: str = "client") -> tuple[int, str]:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", node.port, context=tls_context(node, cert if client_cert else None), timeout=20
    )
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def exec_url(node: Node, command: list[str], container: str = "sleep", pod: str = POD, **flags: str) -> str:
    query = urlencode([("command", c) for c in command] + list((flags or {"output": "1", "error": "1"}).items()))
    return f"wss://127.0.0.1:{node.port}/exec/{NAMESPACE}/{pod}/{container}?{query}"


def connect(node: Node, url: str, cert: str | None = "client") -> websocket.WebSocket:
    sslopt = {"ca_certs": str(node.pki / "serving-ca.crt")}
    if cert:
        sslopt.update(certfile=str(node.pki / f"{cert}.crt"), keyfile=str(node.pki / f"{cert}.key"))
    return websocket.create_connection(
        url, subprotocols=["v4.channel.k8s.io"], sslopt=sslopt, timeout=20, http_no_proxy=["127.0.0.1"]
    )


def read_channels(ws: websocket.WebSocket, got: dict[int, bytes] | None = None) -> dict[int, bytes]:
    """Every frame until the server closes: what each channel (its first byte) carried, added to
    `got` as it comes."""
    got = {STDOUT: b"", STDERR: b"", STATUS: b""} if got is None else got
    while True:
        try:
            opcode, data = ws.recv_data()
        except websocket.WebSocketConnectionClosedException:
            break
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
        if data:
            got[data[0]] = got.get(data[0], b"") + data[1:]
    ws.close()
    return got


@dataclass
class Exec:
    stdout: str
    stderr: str
    status: dict


def run(node: Node, command: list[str], container: str = "sleep", pod: str = POD) -> Exec:
    """An exec as `kubectl exec` asks the API server for it (stdout and stderr, no stdin, no TTY)."""
    got = read_channels(connect(node, exec_url(node, command, container, pod)))
    return Exec(got[STDOUT].decode(), got[STDERR].decode(), json.loads(got[STATUS]))


def exit_code(status: dict) -> int:
    """As kubectl reads the status channel: 0 on Success, else the ExitCode cause."""
    if status["status"] == "Success":
        return 0
    assert status["reason"] == "NonZeroExitCode", status
    (cause,) = [c for c in status["details"]["causes"] if c["reason"] == "ExitCode"]
    return int(cause["message"])


def netns_pids(name: str) -> list[str]:
    return subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()


def test_healthz_answers_without_a_client_certificate(node):
    assert get(node, "/healthz", client_cert=False) == (200, "ok")


def test_exec_runs_in_the_pods_network_namespace_and_root(node):
    netns_inode = os.stat(f"/run/netns/{node.netns}").st_ino
    done = run(node, ["sh", "-c", "readlink /proc/self/ns/net; ip -o link; pwd; id -u; id -G"])
    assert (done.status, done.stderr) == ({"metadata": {}, "status": "Success"}, "")
    namespace, *links, cwd, uid, groups = done.stdout.splitlines()
    assert namespace == f"net:[{netns_inode}]"
    assert [link.split(":")[1].strip() for link in links] == ["lo"]  # the host has more
    assert (cwd, uid, groups) == (str(node.root), "0", "0")
    # The pod's DNS config, as the node agent leaves it in /etc/netns/<netns>/.
    assert run(node, ["cat", "/etc/resolv.conf"]).stdout == RESOLV_CONF


def test_exec_has_the_containers_env_and_nothing_of_the_servers(node):
    done = run(node, ["env"])
    assert sorted(done.stdout.splitlines()) == [f"GREETING={GREETING}", f"PATH={DEFAULT_PATH}"]
    # A PATH of the container's own is kept, and the command is looked up in it.
    assert run(node, ["env"], container="app").stdout == "PATH=/usr/bin:/bin\n"


def test_exec_runs_as_the_containers_user_without_supplementary_groups(node):
    done = run(node, ["sh", "-c", "id -u; id -g; id -G"], container="app")
    assert done.stdout.split() == ["1000", "1000", "1000"]


def test_a_failing_command_reports_its_exit_code_and_output(node):
    done = run(node, ["sh", "-c", "echo to stdout; echo to stderr >&2; exit 3"])
    assert (done.stdout, done.stderr, exit_code(done.status)) == ("to stdout\n", "to stderr\n", 3)
    assert exit_code(run(node, ["false"]).status) == 1
    # A command the container does not have: setpriv's 127, as a shell's.
    missing = run(node, ["no-such-command"])
    assert exit_code(missing.status) == 127 and "no-such-command" in missing.stderr


def test_exec_in_a_missing_pod_or_container_or_a_stopped_one_is_refused_naming_it(node):
    for where, expected in (
        ({"pod": "no-such-pod"}, f"pod {NAMESPACE}/no-such-pod not found"),
        ({"container": "no-such-container"}, f'container "no-such-container" not found in pod {NAMESPACE}/{POD}'),
        ({"container": "stopped"}, f'container "stopped" in pod {NAMESPACE}/{POD} is not running'),
    ):
        status = run(node, ["true"], **where).status
        assert status["status"] == "Failure" and expected in status["message"], status


def test_exec_without_a_client_certificate_or_with_a_strangers_is_refused(node):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        connect(node, exec_url(node, ["true"]), cert=None)
    assert refused.value.status_code == 401
    assert get(node, f"/containerLogs/{NAMESPACE}/{POD}/sleep", client_cert=False)[0] == 401
    # A certificate from another CA fails the TLS handshake (TLS 1.3: the client may only see it
    # on its first read).
    with pytest.raises(OSError):
        get(node, f"/containerLogs/{NAMESPACE}/{POD}/sleep", cert="stranger")
    # The server logs the failed handshake once its side of it ends, which may be after the
    # client gave up: wait for the line (it came late once in CI on a busy machine).
    deadline = time.monotonic() + 10
    while "certificate signed by unknown authority" not in node.log.read_text():
        assert time.monotonic() < deadline, node.log.read_text()
        time.sleep(0.1)


def test_a_tty_exec_gets_a_terminal_of_the_size_the_client_asks(node):
    url = exec_url(node, ["sh", "-c", "tty; echo $TERM; while read line; do stty size; done"],
                   input="1", output="1", tty="1")  # fmt: skip
    ws = connect(node, url)
    got: dict[int, bytes] = {STDOUT: b"", STDERR: b"", STATUS: b""}
    reader = threading.Thread(target=read_channels, args=(ws, got), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 15
        while b"xterm" not in got[STDOUT]:  # before any input, whose echo would come between
            assert time.monotonic() < deadline, got
            time.sleep(0.05)
        ws.send_binary(bytes([RESIZE]) + json.dumps({"Width": 123, "Height": 45}).encode())
        while b"45 123" not in got[STDOUT]:  # the resize travels apart from stdin: ask until it landed
            assert time.monotonic() < deadline, got
            ws.send_binary(b"\x00\n")
            time.sleep(0.2)
        ws.send_binary(b"\x00\x04")  # ^D: the shell's `read` ends, and with it the shell
        reader.join(20)
    finally:
        ws.close()
    assert re.match(rb"/dev/pts/\d+\r\nxterm\r\n", got[STDOUT]), got
    assert json.loads(got[STATUS])["status"] == "Success", got


def test_a_server_told_to_stop_kills_the_commands_it_runs(binary, pki, netns, tmp_path):
    other = start_node(binary, pki, netns, tmp_path)
    try:
        ws = connect(other, exec_url(other, ["sleep", "600"]))
        deadline = time.monotonic() + 10
        # One process: ip netns exec and setpriv exec the next, they do not fork.
        while [cmdline(pid) for pid in netns_pids(netns)] != [b"sleep\x00600\x00"]:
            assert time.monotonic() < deadline, "the exec did not start"
            time.sleep(0.05)
        (sleeping,) = netns_pids(netns)
    finally:
        procs.stop([other.pid], str(other.pods))
    assert exit_code(json.loads(read_channels(ws)[STATUS])) == 128 + 9  # SIGKILL, as a shell says
    assert netns_pids(netns) == [] and not Path(f"/proc/{sleeping}").exists()
    assert "msg=stopped" in other.log.read_text(), "SIGTERM should be a clean stop"


def cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


def test_logs_tail_limit_and_previous(node):
    logs = f"/containerLogs/{NAMESPACE}/{POD}/sleep"
    assert get(node, logs) == (200, "one\ntwo\nthree\nfour\n")
    assert get(node, f"{logs}?tailLines=2") == (200, "three\nfour\n")
    assert get(node, f"{logs}?tailLines=10") == (200, "one\ntwo\nthree\nfour\n")
    assert get(node, f"{logs}?limitBytes=6") == (200, "one\ntw")
    assert get(node, f"{logs}?previous=true") == (200, "the container before the restart\n")
    status, body = get(node, f"/containerLogs/{NAMESPACE}/{POD}/app?previous=true")
    assert status == 400 and 'previous terminated container "app"' in body


def test_logs_of_a_missing_pod_or_container_are_404_naming_it(node):
    status, body = get(node, f"/containerLogs/{NAMESPACE}/no-such-pod/sleep")
    assert status == 404 and f"pod {NAMESPACE}/no-such-pod not found" in body
    status, body = get(node, f"/containerLogs/{NAMESPACE}/{POD}/no-such-container")
    assert status == 404 and 'container "no-such-container" not found' in body


def test_followed_logs_stream_what_is_appended_until_the_container_stops(node, tmp_path):
    log = tmp_path / "follow.log"
    log.write_text("first\n")
    pod = node.pod()
    pod["containers"]["follow"] = {**pod["containers"]["sleep"], "log": str(log), "previousLog": ""}
    node.write_pod(pod)
    connection = http.client.HTTPSConnection("127.0.0.1", node.port, context=tls_context(node), timeout=20)
    try:
        connection.request("GET", f"/containerLogs/{NAMESPACE}/{POD}/follow?follow=true")
        response = connection.getresponse()
        assert response.status == 200
        assert response.read1() == b"first\n"
        with log.open("a") as out:
            out.write("second\n")
        assert response.read1() == b"second\n"
        # The container stops: what it wrote last still comes, then the stream ends.
        with log.open("a") as out:
            out.write("last\n")
        pod["containers"]["follow"]["running"] = False
        node.write_pod(pod)
        assert response.read() == b"last\n"
    finally:
        connection.close()
        del pod["containers"]["follow"]
        node.write_pod(pod)


def test_port_forward_reaches_a_server_on_the_pods_own_loopback(node):
    """A websocket port-forward (v4.channel.k8s.io, as client libraries ask the API server for
    one) to a server that listens on 127.0.0.1 inside the pod's namespace only, as istiod's
    debug port answers only loopback callers."""
    subprocess.run(["ip", "-n", node.netns, "link", "set", "lo", "up"], check=True)  # as in a pod
    server = subprocess.Popen(
        ["ip", "netns", "exec", node.netns, sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "18080"],
        cwd=node.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while (
            "127.0.0.1:18080"
            not in subprocess.run(
                ["ip", "netns", "exec", node.netns, "ss", "-ltn"], capture_output=True, text=True
            ).stdout
        ):
            assert time.monotonic() < deadline, "the server in the pod did not listen"
            time.sleep(0.1)
        ws = connect(node, f"wss://127.0.0.1:{node.port}/portForward/{NAMESPACE}/{POD}?port=18080")
        # First, on the data (0) and error (1) channels, the port number: 2 bytes, little endian.
        port = (18080).to_bytes(2, "little")
        assert {ws.recv_data()[1] for _ in range(2)} == {b"\x00" + port, b"\x01" + port}
        ws.send_binary(b"\x00" + b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
        answer = b""
        while b"</html>" not in answer:
            opcode, data = ws.recv_data()
            assert opcode != websocket.ABNF.OPCODE_CLOSE, answer
            if data and data[0] == 0:
                answer += data[1:]
        assert answer.startswith(b"HTTP/1.0 200 OK"), answer[:200]
        ws.close()
        # From this host the same port is not reachable: only the pod's loopback has it.
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", 18080), timeout=2).close()
    finally:
        server.kill()
        server.wait()


def test_port_forward_to_a_missing_pod_says_so_on_the_error_channel(node):
    ws = connect(node, f"wss://127.0.0.1:{node.port}/portForward/{NAMESPACE}/nosuchpod?port=18080")
    got = read_channels(ws, {0: b"", 1: b""})
    assert b"pod sample/nosuchpod not found" in got[1], got
