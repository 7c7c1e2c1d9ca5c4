"""The data plane that `up` makes, on lab clusters, against floors:

- **time to the first request answered across clusters**, from nothing: the lab's clusters
  started and the mesh `up` (what `python -m lab run` does), then the walk-through's Step 6 curl
  from every cluster's sleep until one is answered by a pod of another cluster. Floor: a second
  fresh lab, the same objects made by hand (bench/floor.py), to the same first answer;
- **memory of one sidecar** (pilot-agent and its Envoy, RSS) of a sleep pod. Floor: upstream
  Envoy alone, same binary and concurrency, on a static listener (no xDS, no agent);
- **memory of the whole lab** (every process, proportional set size so that Envoy's shared
  binary counts once) with the mesh up and answering. Floor: the hand-made mesh's lab, at the
  same point; the lab before any mesh in the note;
- **requests per second** one sleep gets across clusters (its sidecar, the other cluster's
  east-west gateway, helloworld's sidecar), and to helloworld in its own cluster (two sidecars).
  Floor: the same curl against the same helloworld server with no proxy between (loopback of a
  namespace of its own).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import time
from typing import Sequence

import yaml

from lab import Lab
from lab.nodes.images import envoy_binary
from lab.network.namespaces import remove_netns
from lab.nodes.pod_state import pod_dirs, read_state
from lab.stack import mesh_config

from . import floor, processes, projects
from .report import Row
from .stack_objects import manifests_by_cluster
from .up import cluster_names

KUBECTL = floor.KUBECTL
SAMPLE = "sample"
HELLO = re.compile(r"Hello version: (?P<version>\S+), instance: (?P<instance>\S+)")
HELLO_URL = "helloworld.sample:5000/hello"
# Istio's sidecars run Envoy with two worker threads (ProxyConfig concurrency 2): the floor too.
CONCURRENCY = 2


# --- requests, as the walk-through sends them ------------------------------------------------


def kubectl(kubeconfig: pathlib.Path, context: str, *args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [KUBECTL, f"--kubeconfig={kubeconfig}", f"--context={context}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl --context={context} {' '.join(args[:6])} failed: {done.stderr[-1500:]}")
    return done.stdout


def in_sleep(kubeconfig: pathlib.Path, context: str, *command: str, timeout: float = 120) -> str:
    """`kubectl exec -n sample deploy/sleep -c sleep -- COMMAND` (Step 6's way in)."""
    return kubectl(kubeconfig, context, "exec", "-n", SAMPLE, "deploy/sleep", "-c", "sleep", "--", *command,
                   timeout=timeout)  # fmt: skip


def helloworld_pods(kubeconfig: pathlib.Path, names: Sequence[str]) -> dict[str, str]:
    """helloworld pod name -> the cluster it runs in."""
    found = {}
    for name in names:
        listed = json.loads(
            kubectl(kubeconfig, name, "get", "pods", "-n", SAMPLE, "-l", "app=helloworld", "-o", "json")
        )
        found.update({pod["metadata"]["name"]: name for pod in listed["items"]})
    return found


def first_cross_answer(kubeconfig: pathlib.Path, names: Sequence[str], timeout: float = 300) -> str:
    """Step 6's curl from each cluster's sleep in turn until a pod of another cluster answers;
    which pair answered first ("c1 -> c2")."""
    deadline = time.monotonic() + timeout
    last = "no request sent"
    while time.monotonic() < deadline:
        for source in names:
            try:
                answer = in_sleep(kubeconfig, source, "curl", "-sS", "--max-time", "2", HELLO_URL, timeout=10)
            except (RuntimeError, subprocess.TimeoutExpired) as error:  # no sleep pod yet, no route yet
                last = str(error)[-300:]
                continue
            match = HELLO.search(answer)
            if match:
                try:
                    where = helloworld_pods(kubeconfig, names).get(match["instance"])
                except (RuntimeError, subprocess.TimeoutExpired) as error:  # an API server still busy
                    last = str(error)[-300:]
                    continue
                if where and where != source:
                    return f"{source} -> {where}"
                last = f"{source} answered by {where}"
        time.sleep(0.2)
    raise RuntimeError(f"no request crossed clusters within {timeout:.0f} s; last: {last}")


def load_script(requests: int, parallel: int) -> str:
    """curl sends `requests` GETs over at most `parallel` keep-alive connections; the script
    prints the wall clock before and after, and every status code."""
    return (
        "date +%s.%N; "
        f"curl -s -o /dev/null -w '%{{http_code}}\\n' --parallel --parallel-max {parallel} "
        f"'http://{HELLO_URL}?[1-{requests}]'; "
        "date +%s.%N"
    )


def requests_per_second(output: str, requests: int) -> tuple[float, int]:
    """(requests answered 200 per second, requests that were not) from load_script's output."""
    lines = output.split()
    started, ended, codes = float(lines[0]), float(lines[-1]), lines[1:-1]
    if len(codes) != requests:
        raise RuntimeError(f"{len(codes)} status codes for {requests} requests: {output[-500:]}")
    answered = codes.count("200")
    return answered / (ended - started), requests - answered


def wait_until_only(kubeconfig: pathlib.Path, source: str, clusters: set[str], names: Sequence[str]) -> None:
    """Until ten answers in a row to `source`'s sleep come from pods of `clusters` (istiod has
    pushed the endpoints that are gone)."""
    deadline, in_a_row = time.monotonic() + 120, 0
    while in_a_row < 10:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{source}'s requests still reach clusters other than {sorted(clusters)}")
        try:
            match = HELLO.search(in_sleep(kubeconfig, source, "curl", "-sS", "--max-time", "2", HELLO_URL, timeout=10))
            answered = match and helloworld_pods(kubeconfig, names).get(match["instance"]) in clusters
        except (RuntimeError, subprocess.TimeoutExpired):  # a request to a pod going away failed
            answered = False
        in_a_row = in_a_row + 1 if answered else 0


# --- memory ---------------------------------------------------------------------------------


def whole_lab_mib() -> tuple[float, dict[str, float]]:
    """Every process this benchmark started (the lab it runs is its only child tree now), PSS;
    and by program."""
    by_program: dict[str, float] = {}
    for pid in processes.descendants(os.getpid()):
        argv = processes.cmdline(pid)
        if pid != os.getpid() and argv:  # an empty one: gone meanwhile
            name = _program(argv)
            by_program[name] = by_program.get(name, 0.0) + processes.pss_mib(pid)
    return sum(by_program.values()), by_program


def _program(argv: Sequence[str]) -> str:
    """What a lab process is: its program's name, a Python module's name for `python -m`."""
    if "python" in os.path.basename(argv[0]) and "-m" in argv[:-1]:
        return argv[argv.index("-m") + 1]
    return os.path.basename(argv[0])


def sidecar_mib(lab_dir: pathlib.Path, cluster: str) -> float:
    """RSS of the istio-proxy container (pilot-agent and its Envoy) of `cluster`'s sleep pod."""
    for pod_dir in pod_dirs(lab_dir):
        state = read_state(pod_dir)
        if state.get("cluster") == cluster and state.get("namespace") == SAMPLE and state.get("app") == "sleep":
            proxy = (state.get("containers") or {}).get("istio-proxy") or {}
            if proxy.get("pid"):
                return sum(processes.rss_mib(pid) for pid in processes.descendants(proxy["pid"]))
    raise RuntimeError(f"no running istio-proxy container of {cluster}'s sleep pod in {lab_dir}")


ENVOY_ALONE = {
    "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
    "static_resources": {
        "listeners": [
            {
                "name": "http",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",  # noqa: E501
                        "stat_prefix": "http",
                        "route_config": {"virtual_hosts": [{"name": "any", "domains": ["*"], "routes": [
                            {"match": {"prefix": "/"}, "direct_response": {"status": 200}}]}]},
                        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                    },
                }]}],
            }
        ]
    },
}  # fmt: skip


def envoy_alone_mib(workdir: pathlib.Path, settle: float = 3.0) -> float:
    """RSS of upstream Envoy on a static listener, once it is ready (its admin address written)."""
    config, address = workdir / "envoy-alone.yaml", workdir / "envoy-alone.admin"
    config.write_text(yaml.safe_dump(ENVOY_ALONE), encoding="utf-8")
    process = subprocess.Popen(
        [str(envoy_binary()), "-c", str(config), "--concurrency", str(CONCURRENCY), "--disable-hot-restart",
         "--admin-address-path", str(address), "--log-level", "warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (address.exists() and address.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Envoy alone did not start: {process.stderr.read().decode()[-1000:]}")
            time.sleep(0.1)
        time.sleep(settle)
        return processes.rss_mib(process.pid)
    finally:
        process.kill()
        process.wait()


def direct_requests_per_second(workdir: pathlib.Path, requests: int, parallel: int) -> tuple[float, int]:
    """The floor of a request: curl and the lab's helloworld server in a network namespace of
    their own, over its loopback, no proxy; removed again whatever happens."""
    netns = f"mlbench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        server = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-m", "lab.nodes.helloworld"],
            cwd=str(projects.REPO), env={**os.environ, "SERVICE_VERSION": "v1", "HOSTNAME": "floor"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        probe = ["ip", "netns", "exec", netns, "curl", "-sf", "--max-time", "1", "http://127.0.0.1:5000/health"]
        while subprocess.run(probe, capture_output=True).returncode != 0:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the floor's helloworld server did not answer")
            time.sleep(0.1)
        script = load_script(requests, parallel).replace(HELLO_URL, "127.0.0.1:5000/hello")
        done = subprocess.run(["ip", "netns", "exec", netns, "sh", "-c", script], capture_output=True, text=True,
                              check=True, timeout=300)  # fmt: skip
        return requests_per_second(done.stdout, requests)
    finally:
        remove_netns(netns)  # kills the server with it


# --- the measurement ------------------------------------------------------------------------


def measure(count: int, workdir: pathlib.Path, requests: int, parallel: int = 4) -> list[Row]:
    names = cluster_names(count)
    tag = f"{count} clusters"
    ours = workdir / f"data-plane-{count}"
    started = time.monotonic()
    with Lab(ours / "lab", clusters=names) as lab:
        lab_seconds = time.monotonic() - started
        bare_mib, _ = whole_lab_mib()
        config = mesh_config(lab.clusters, lab.kubeconfig_path)
        mesh = projects.mesh_project(ours / "project", ours / "state", "bench").init(config)
        up_seconds = mesh.up().seconds
        first_pair = first_cross_answer(lab.kubeconfig_path, names)
        first_seconds = time.monotonic() - started
        objects = manifests_by_cluster(mesh.export())
        time.sleep(5)  # the sidecars' first pushes done
        sidecar = sidecar_mib(lab.dir, names[0])
        whole, by_program = whole_lab_mib()
        # Only c2 keeps helloworld: c1's requests all cross to it, c2's stay at home.
        for name in names:
            if name != names[1]:
                kubectl(lab.kubeconfig_path, name, "scale", "deploy", "-n", SAMPLE, "-l", "app=helloworld",
                        "--replicas=0")  # fmt: skip
        wait_until_only(lab.kubeconfig_path, names[0], {names[1]}, names)
        script = load_script(requests, parallel)
        across, across_failed = requests_per_second(in_sleep(lab.kubeconfig_path, names[0], "sh", "-c", script), requests)  # fmt: skip
        local, local_failed = requests_per_second(in_sleep(lab.kubeconfig_path, names[1], "sh", "-c", script), requests)  # fmt: skip
    direct, direct_failed = direct_requests_per_second(workdir, requests, parallel)
    alone = envoy_alone_mib(workdir)

    settings = {c["name"]: (c["clusterName"], c["apiServerUrl"]) for c in config["clusters"]}
    egress = {c["name"]: c["egressCidrs"] for c in config["clusters"]}
    by_hand = workdir / f"data-plane-floor-{count}"
    by_hand.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with Lab(by_hand / "lab", clusters=names) as lab:
        settings = {c.name: (settings[c.name][0], c.server) for c in lab.clusters}
        # The gateways' source ranges name each lab's own node addresses.
        moved = json.dumps(objects)
        for c in lab.clusters:
            for old, new in zip(egress[c.name], c.egress_cidrs):
                moved = moved.replace(f'"{old}"', f'"{new}"')
        floor.make_everything(by_hand, lab.kubeconfig_path, json.loads(moved), settings)
        first_cross_answer(lab.kubeconfig_path, names)
        floor_first_seconds = time.monotonic() - started
        time.sleep(5)
        floor_whole, floor_by_program = whole_lab_mib()

    failed = f"; {across_failed} of {requests} failed" if across_failed else ""
    most = max(by_program, key=lambda name: abs(by_program[name] - floor_by_program.get(name, 0.0)))
    apart = by_program[most] - floor_by_program.get(most, 0.0)
    return [
        Row(f"first request across clusters, from nothing, {tag}", first_seconds, floor_first_seconds,
            note=f"lab {lab_seconds:.0f} s + `up` {up_seconds:.0f} s, first {first_pair}; floor: the same lab, "
            "objects by hand (bench/floor.py)"),
        Row(f"memory of one sidecar (pilot-agent + Envoy), {tag}", sidecar, alone, unit="MiB",
            note=f"RSS of {names[0]}'s sleep's istio-proxy; floor: upstream Envoy alone, static listener, "
            f"concurrency {CONCURRENCY}"),
        Row(f"memory of the whole lab with the mesh, {tag}", whole, floor_whole, unit="MiB",
            note=f"PSS of every process; floor: the hand-made mesh's lab; most apart: {most} {apart:+,.0f} MiB; "
            f"before any mesh {bare_mib:,.0f} MiB"),
        Row(f"requests/s of one sleep across clusters, {tag}", across, direct, unit="req/s",
            note=f"{requests} requests, {parallel} connections, sidecar + {names[1]}'s gateway + sidecar{failed}; "
            "floor: the same curl and server, no proxy"),
        Row(f"requests/s of one sleep in its own cluster, {tag}", local, direct, unit="req/s",
            note=f"two sidecars{f'; {local_failed} failed' if local_failed else ''}"
            f"{f'; floor: {direct_failed} failed' if direct_failed else ''}"),
    ]  # fmt: skip
