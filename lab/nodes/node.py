"""STAND-IN for each cluster's kubelet, and for the scheduler of a cluster of one node.

The lab has no container runtime. Each cluster gets one node, a real `Node` object (Ready), and
this process does for every pod on it what the kubelet does, with the pod's containers run as
processes of this host:

- the pod gets a network namespace of its own on the node's network (lab/network/namespaces.py) and an
  address from the cluster's pod range, so the real endpoint and EndpointSlice controllers put
  real pod IPs into Endpoints and EndpointSlices, which istiod reads as on any cluster;
- its volumes are files under `<lab>/<cluster>/pods/<namespace>.<pod>/root` (lab/nodes/pod.py: Secret,
  ConfigMap, downward API, projected service-account tokens, emptyDir; hostPath from the node's
  own folder, `<lab>/<cluster>/host`, bind-mounted in the container: lab/nodes/host.py), its environment is
  resolved as the kubelet resolves it, and each container runs with that folder as its working
  directory (the container's `/`), as the user its securityContext names, inside the pod's
  namespace (`ip netns exec`, which also mounts the pod's own resolv.conf and hosts over /etc);
- images are programs of this host (lab/nodes/images.py), refused by name when unknown;
- init containers run in order to completion; an init container with `restartPolicy: Always`
  (a native sidecar: Istio injects `istio-proxy` so on a 1.33+ node) starts, and the next one
  waits until its startup probe passes; containers restart with the kubelet's back-off;
- readiness and startup probes (httpGet, tcpSocket) are made from the host to the pod IP, as the
  kubelet makes them from the node;
- the pod's status says what the kubelet would (phase, conditions, pod IP, container states and
  restart counts), and a deleted pod's containers get SIGTERM, SIGKILL after its grace period,
  then the pod object is removed (grace 0) and its namespace torn down;
- pods nobody scheduled are bound to the node (the scheduler's part, for one node);
- `kubectl exec` and `kubectl logs` reach the pods through the node's kubelet API
  (lab-kubelet-api, started by the lab: toolchain/go/kubelet-api), which reads `pod.json`.

Names: a pod resolves `istiod.istio-system.svc` (what its proxy dials first) through its hosts
file, to istiod's pod IP: no cluster DNS or kube-proxy runs here. Everything else a meshed app
looks up is answered by Istio's own DNS proxy in its sidecar (`ISTIO_META_DNS_CAPTURE`), as
configured for the mesh; resolv.conf names the conventional cluster DNS address 10.0.0.10, which
nothing answers. Pods reach the lab's API servers through lab/network/api_relay.py.

Not done: hostNetwork pods, other volume kinds, exec and gRPC probes, lifecycle hooks, resource
limits (recorded, not enforced), image pulls, `kubectl attach`, node leases (no node lifecycle
controller runs). Anything the pod needs that this does not do fails it by name.

Run by `lab up` as `python -m lab.nodes.node --dir DIR`; each pod's state is `<pod dir>/pod.json`, each
container's output `<pod dir>/<container>.log`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import yaml

from .. import standin
from ..clusters.controlplane import ControlPlane
from ..clusters.kubeapi import ApiError, KubeClient
from ..network import namespaces
from ..network.api_relay import ApiRelay
from ..toolchain import versions
from . import images, pod
from .host import NodeHost, container_command
from .pod_state import read_state, write_state

BACKOFF_START, BACKOFF_MAX = 10.0, 300.0  # the kubelet's crash-loop back-off
DEFAULT_GRACE = 30
HEARTBEAT_SECONDS = 40
NODE_CAPACITY = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"}
# The lab's Kubernetes, as the Node reports it: Istio reads it (native sidecars from 1.33 on).
KUBELET_VERSION = f"v{versions()['KUBERNETES_VERSION']}"
CLUSTER_DNS = "10.0.0.10"
ISTIOD_SERVICE_PREFIX = "istiod"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_name(cluster: str) -> str:
    return f"{cluster}-node"


# Where the lab's folder is seen by the pods' processes. A container that runs as a user of its
# own (the proxies' 1337) must reach its pod's root by a path whose every folder it may search:
# Envoy resolves its config's full path. The lab's folder may well sit under one it may not
# (~root is 0700, so is pytest's temporary folder), so `lab up` binds the lab's folder here.
POD_VIEW = Path("/run/mesh-lab")


def pod_view(prefix: str) -> Path:
    return POD_VIEW / prefix


def mount_pod_view(lab_dir: Path, prefix: str) -> None:
    view = pod_view(prefix)
    unmount_pod_view(prefix)
    view.mkdir(parents=True)
    for folder in (POD_VIEW, view):
        folder.chmod(0o755)
    subprocess.run(["mount", "--bind", str(lab_dir), str(view)], check=True, capture_output=True)
    lab_dir.chmod(lab_dir.stat().st_mode | 0o011)  # searchable (not listable) through the view


def _mounted(path: Path) -> bool:
    # Not Path.is_mount(): a bind mount from the same file system as its parent looks like none.
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    return any(line.split()[4] == str(path) for line in mounts)


def unmount_pod_view(prefix: str) -> None:
    view = pod_view(prefix)
    while _mounted(view):
        subprocess.run(["umount", "--lazy", str(view)], check=True, capture_output=True)
    if view.exists():
        view.rmdir()  # empty once unmounted: never removes the lab's files


class Container:
    """One container of a pod, run as a process."""

    def __init__(self, spec: dict, init: bool):
        self.spec, self.name, self.init = spec, spec["name"], init
        self.sidecar = init and spec.get("restartPolicy") == "Always"
        self.popen: Optional[subprocess.Popen] = None
        self.pid: Optional[int] = None
        self.restarts = 0
        self.started_at: Optional[str] = None
        self.started = False  # startup probe passed (or none)
        self.ready = False
        self.exit: Optional[dict] = None  # the last termination
        self.next_start = 0.0
        self.waiting: tuple[str, str] = ("ContainerCreating", "")
        self.env: dict[str, str] = {}
        self.uid = self.gid = 0

    def running(self, netns_inode: Optional[int]) -> bool:
        if self.popen is not None:
            if self.popen.poll() is None:
                return True
            code = self.popen.returncode
            self.exit = {
                "exitCode": code if code >= 0 else 128 - code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": self.started_at,
                "finishedAt": now(),
            }
            self.popen = self.pid = None
            return False
        if self.pid and netns_inode and namespaces.process_netns_inode(self.pid) == netns_inode:
            return True  # adopted from an earlier run of this process
        self.pid = None
        return False

    def state(self, netns_inode: Optional[int]) -> dict:
        if self.running(netns_inode):
            return {"running": {"startedAt": self.started_at}}
        if self.init and not self.sidecar and self.exit and self.exit["exitCode"] == 0:
            return {"terminated": self.exit}
        reason, message = self.waiting
        if self.exit and reason not in ("ErrImagePull", "CreateContainerConfigError"):
            reason = "CrashLoopBackOff"
        return {"waiting": {"reason": reason, **({"message": message} if message else {})}}

    def status(self, netns_inode: Optional[int]) -> dict:
        status = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "ready": bool(self.ready and self.running(netns_inode)),
            "started": bool(self.started and self.running(netns_inode)),
            "restartCount": self.restarts,
            "state": self.state(netns_inode),
            "containerID": f"process://{self.pid}" if self.pid else "",
        }
        if self.exit:
            status["lastState"] = {"terminated": self.exit}
        return status


def _probe(spec: Optional[dict], ip: str, ports: dict[str, int]) -> bool:
    """One try of an httpGet or tcpSocket probe from the node to the pod; no probe passes."""
    if not spec:
        return True
    for kind in ("httpGet", "tcpSocket"):
        if kind in spec:
            port = spec[kind]["port"]
            port = port if isinstance(port, int) else ports.get(port) or int(port)
            try:
                if kind == "tcpSocket":
                    socket.create_connection((ip, port), timeout=1).close()
                    return True
                path = spec[kind].get("path", "/")
                with urllib.request.urlopen(f"http://{ip}:{port}{path}", timeout=1) as answer:
                    return 200 <= answer.status < 400
            except (OSError, urllib.error.URLError, ValueError):
                return False
    raise pod.Unsupported(f"probe {sorted(spec)}")


class PodRun:
    """What the node does for one pod, from start to its removal."""

    def __init__(self, node: "Node", obj: dict):
        md = obj["metadata"]
        self.node, self.obj = node, obj
        self.namespace, self.name, self.uid = md["namespace"], md["name"], md["uid"]
        self.dir = node.dir / f"{self.namespace}.{self.name}"
        self.root = self.dir / "root"
        old = read_state(self.dir)
        same = old.get("uid") == self.uid
        self.ip: Optional[str] = old.get("ip") if same else None
        self.netns: Optional[str] = old.get("netns") if same else None
        self.started_at: Optional[str] = old.get("startedAt") if same else None
        self.containers = [Container(c, True) for c in obj["spec"].get("initContainers") or []] + [
            Container(c, False) for c in obj["spec"]["containers"]
        ]
        for c in self.containers:
            c.pid = (old.get("containers", {}).get(c.name) or {}).get("pid") if same else None
            c.started = c.ready = bool(c.pid)
        self.volumes: Optional[pod.Volumes] = None
        self.failure: Optional[str] = None  # why the pod cannot run at all
        self.terminating_since: Optional[float] = None
        self._published: Optional[str] = None
        self.ports = {
            p["name"]: p["containerPort"] for c in self.containers for p in c.spec.get("ports") or [] if p.get("name")
        }

    # -- helpers ---------------------------------------------------------------------------------

    @property
    def netns_inode(self) -> Optional[int]:
        return namespaces.netns_inode(self.netns) if self.netns else None

    def identity(self) -> pod.PodIdentity:
        return pod.PodIdentity(
            self.name, self.namespace, self.obj["spec"].get("serviceAccountName") or "default", self.ip or ""
        )

    def _user(self, c: Container) -> tuple[int, int]:
        pod_sc = self.obj["spec"].get("securityContext") or {}
        sc = c.spec.get("securityContext") or {}
        uid = sc.get("runAsUser", pod_sc.get("runAsUser", 0))
        gid = sc.get("runAsGroup", pod_sc.get("runAsGroup", uid if uid else 0))
        return int(uid), int(gid)

    # -- the pod's life ----------------------------------------------------------------------------

    def sync(self, client: KubeClient, obj: dict) -> None:
        self.obj = obj
        if self.ip:  # what the downward API reads, also before the API server has our status
            obj.setdefault("status", {}).update({"podIP": self.ip, "hostIP": "127.0.0.1"})
        if self.failure is None and self.netns is None:
            self._set_up(client)
        if self.failure is None and self.volumes is not None:
            try:
                self.volumes.sync()
            except (RuntimeError, ApiError) as error:
                # A volume's object is missing: the kubelet keeps the pod waiting and tries again.
                for c in self.containers:
                    if not c.running(self.netns_inode):
                        c.waiting = ("ContainerCreating", str(error))
                self.publish(client)
                return
        if self.failure is None:
            self._run_containers(client)
        self.save()
        self.publish(client)

    def _set_up(self, client: KubeClient) -> None:
        try:
            self.ip = self.node.allocate_ip(self)
            self.netns = self.node.network.pod_netns(self.node.cluster, int(self.ip.rsplit(".", 1)[1]))
            self.node.network.add_pod(self.node.cluster, self.netns, self.ip)
            self.write_etc()
            self.node.relay.add(self.netns)
            self.started_at = now()
            self.root.mkdir(parents=True, exist_ok=True)
            self.root.chmod(0o755)
            self.obj.setdefault("status", {}).update({"podIP": self.ip, "hostIP": "127.0.0.1"})
            self.volumes = pod.Volumes(client, self.identity(), self.obj, self.root, self.node.host)
        except pod.Unsupported as error:
            self.failure = f"lab node: {error}"
        except (namespaces.NetworkError, OSError) as error:
            self.failure = f"lab node: the pod's network: {error}"

    def write_etc(self) -> None:
        if not self.netns:
            return
        search = f"{self.namespace}.svc.cluster.local svc.cluster.local cluster.local"
        hosts = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", f"{self.ip}\t{self.name}"]
        hosts += [f"{ip}\t{' '.join(names)}" for ip, names in self.node.istiod_hosts]
        namespaces.write_etc(
            self.netns,
            {
                "resolv.conf": f"search {search}\nnameserver {CLUSTER_DNS}\noptions ndots:5\n",
                "hosts": "\n".join(hosts) + "\n",
            },
        )

    def _start(self, client: KubeClient, c: Container) -> None:
        try:
            program = images.program(c.spec)
        except images.UnknownImage as error:
            c.waiting = ("ErrImagePull", str(error))
            return
        try:
            assert self.volumes is not None
            env = pod.environment(client, self.identity(), self.obj, c.spec, self.node.service_env)
            mounts = self.volumes.host_mounts(c.spec)
        except (pod.Unsupported, RuntimeError, ApiError) as error:
            c.waiting = ("CreateContainerConfigError", str(error))
            return
        images.lay_out(self.root, program.files)
        if "--kubeconfig=./var/run/lab/kubeconfig" in program.argv:
            self._write_kubeconfig()
        c.env = {"PATH": PATH, **env, **program.env}
        c.uid, c.gid = self._user(c)
        command = [pod.expand(arg, c.env) for arg in program.argv]
        inside = container_command(self.root, mounts, command, c.uid, c.gid, program.chroot)
        argv = ["ip", "netns", "exec", str(self.netns), *inside]
        log = self.dir / f"{c.name}.log"
        if c.exit and log.exists():
            os.replace(log, self.dir / f"{c.name}.previous.log")
        with open(log, "ab") as out:
            out.write(f"--- lab.nodes.node {now()}: starting {' '.join(command)} as {c.uid}:{c.gid}\n".encode())
            out.flush()
            c.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                env=c.env,
                start_new_session=True,
            )
        c.pid = c.popen.pid
        c.started_at = now()
        c.started = c.ready = False
        c.waiting = ("ContainerCreating", "")

    def _write_kubeconfig(self) -> None:
        """istiod's in-cluster credentials as a kubeconfig: its API server (through the relay) with
        the pod's service-account token and CA, paths relative to the file as client-go reads them."""
        path = self.root / "var" / "run" / "lab" / "kubeconfig"
        path.parent.mkdir(parents=True, exist_ok=True)
        sa = "../secrets/kubernetes.io/serviceaccount"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "in-cluster",
                    "clusters": [{"name": "in-cluster", "cluster": {"server": self.node.plane.server, "certificate-authority": f"{sa}/ca.crt"}}],
                    "users": [{"name": "in-cluster", "user": {"tokenFile": f"{sa}/token"}}],
                    "contexts": [{"name": "in-cluster", "context": {"cluster": "in-cluster", "user": "in-cluster"}}],
                }
            )
        )  # fmt: skip
        path.chmod(0o644)

    def _run_containers(self, client: KubeClient) -> None:
        inode = self.netns_inode
        if self.obj["metadata"].get("deletionTimestamp"):
            return
        for c in self.containers:
            alive = c.running(inode)
            if c.init and not c.sidecar and not alive and c.exit and c.exit["exitCode"] == 0:
                continue  # done
            if not alive:
                if c.exit is not None and c.next_start == 0.0:  # it ran and stopped: back off
                    c.restarts += 1
                    c.next_start = time.monotonic() + min(BACKOFF_START * 2 ** (c.restarts - 1), BACKOFF_MAX)
                if time.monotonic() >= c.next_start:
                    c.next_start = 0.0
                    self._start(client, c)
                if not c.running(inode):
                    if c.init:
                        return  # the next container waits for this one
                    continue
            startup = c.spec.get("startupProbe")
            if not c.started:
                c.started = _probe(startup, str(self.ip), self.ports)
            if c.started:
                c.ready = _probe(c.spec.get("readinessProbe"), str(self.ip), self.ports)
            if c.init and not c.sidecar:
                return  # runs to completion before anything after it
            if c.sidecar and not c.started:
                return  # a native sidecar must have started before the next container starts

    def terminate(self, client: KubeClient, obj: dict) -> bool:
        """Stop the pod's containers (SIGTERM, then SIGKILL once its grace period is over); True
        once nothing of the pod runs any more and its object is gone."""
        self.obj = obj
        inode = self.netns_inode
        grace = obj["metadata"].get("deletionGracePeriodSeconds")
        grace = DEFAULT_GRACE if grace is None else int(grace)
        if self.terminating_since is None:
            self.terminating_since = time.monotonic()
            self._signal(signal.SIGTERM, inode)
        running = [c for c in self.containers if c.running(inode)]
        if running and time.monotonic() - self.terminating_since >= grace:
            self._signal(signal.SIGKILL, inode)
            running = []
        if running:
            self.publish(client)
            return False
        self.tear_down()
        try:
            client.request(
                "DELETE",
                f"/api/v1/namespaces/{self.namespace}/pods/{self.name}",
                {
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": self.uid},
                },
            )
        except ApiError as error:
            if error.status not in (404, 409):
                raise
        return True

    def _signal(self, sig: int, inode: Optional[int]) -> None:
        for c in self.containers:
            if c.running(inode) and c.pid:
                try:
                    os.killpg(c.pid, sig)
                except ProcessLookupError:
                    pass

    def tear_down(self) -> None:
        """Everything of the pod on this host goes: processes, namespace, relay, files."""
        if self.netns:
            self.node.relay.remove(self.netns)
            self.node.network.remove_pod(self.node.cluster, self.netns)
        for c in self.containers:
            if c.popen is not None:
                try:
                    c.popen.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- what the node records and reports -------------------------------------------------------

    def save(self) -> None:
        labels = self.obj["metadata"].get("labels") or {}
        write_state(
            self.dir,
            {
                "cluster": self.node.cluster,
                "namespace": self.namespace,
                "name": self.name,
                "uid": self.uid,
                "app": labels.get("app"),
                "ip": self.ip,
                "netns": self.netns,
                "root": str(self.root),
                "startedAt": self.started_at,
                "ready": self.ready(),
                "failure": self.failure,
                "containers": {
                    c.name: {
                        "pid": c.pid,
                        "running": c.running(self.netns_inode),
                        "log": str(self.dir / f"{c.name}.log"),
                        "previousLog": str(self.dir / f"{c.name}.previous.log"),
                        "env": c.env,
                        "uid": c.uid,
                        "gid": c.gid,
                    }
                    for c in self.containers
                },
            },
        )

    def ready(self) -> bool:
        inode = self.netns_inode
        return bool(self.failure is None and all(
            (c.ready and c.running(inode)) if (not c.init or c.sidecar) else (c.exit or {}).get("exitCode") == 0
            for c in self.containers
        ))  # fmt: skip

    def publish(self, client: KubeClient) -> None:
        inode = self.netns_inode
        inits = [c for c in self.containers if c.init]
        mains = [c for c in self.containers if not c.init]
        initialized = all((c.exit or {}).get("exitCode") == 0 or (c.sidecar and c.started) for c in inits)
        ready = self.ready()
        running = initialized and all(c.running(inode) for c in mains)
        phase = "Running" if running else "Pending"

        def condition(kind: str, ok: bool, reason: str = "") -> dict:
            out = {"type": kind, "status": "True" if ok else "False", "lastTransitionTime": self.started_at or now()}
            if reason and not ok:
                out["reason"] = reason
            return out

        status: dict[str, Any] = {
            "phase": phase,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.started_at,
            "conditions": [
                condition("PodReadyToStartContainers", self.netns is not None),
                condition("Initialized", initialized, "ContainersNotInitialized"),
                condition("Ready", ready, "ContainersNotReady"),
                condition("ContainersReady", ready, "ContainersNotReady"),
                condition("PodScheduled", True),
            ],
            "containerStatuses": [c.status(inode) for c in mains],
        }
        if inits:
            status["initContainerStatuses"] = [c.status(inode) for c in inits]
        if self.ip:
            status.update({"podIP": self.ip, "podIPs": [{"ip": self.ip}]})
        if self.failure:
            status["message"] = self.failure
            status["reason"] = "LabNodeCannotRun"
        key = hashlib.sha256(json.dumps(status, sort_keys=True).encode()).hexdigest()
        if key == self._published:
            return
        try:
            client.merge_patch(f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status", {"status": status})
        except ApiError as error:
            if error.status != 404:
                raise
        self._published = key


class Node:
    """One cluster's node: its Node object, its pods, and their network."""

    def __init__(self, plane: ControlPlane, lab_network: namespaces.LabNetwork, relay: ApiRelay):
        self.plane, self.network, self.relay = plane, lab_network, relay
        self.cluster = plane.name
        self.name = node_name(plane.name)
        # The pods' folders as their processes see them (POD_VIEW).
        self.dir = pod_view(lab_network.prefix) / plane.dir.name / "pods"
        self.pods: dict[str, PodRun] = {}  # by uid
        # The node's root file system, for hostPath volumes (lab/nodes/host.py).
        self.host = NodeHost(plane.dir / "host")
        self.host.write_primary_cni_config("lab", "cbr0", str(lab_network.pod_cidr(plane.name)))
        # The variables the kubelet gives every container for the API server (its `kubernetes`
        # Service): here the address pods reach it at through the relay.
        self.service_env = {
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(plane.ports["apiserver"]),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(plane.ports["apiserver"]),
        }
        self.istiod_hosts: list[tuple[str, list[str]]] = []
        self._heartbeat = 0.0

    def allocate_ip(self, run: PodRun) -> str:
        taken = {p.ip for p in self.pods.values() if p is not run and p.ip}
        taken |= {read_state(d).get("ip") for d in self.dir.glob("*") if d.is_dir()} - {run.ip}
        if run.ip and run.ip not in taken:
            return run.ip
        for address in self.network.pod_addresses(self.cluster):
            if address not in taken:
                return address
        raise namespaces.NetworkError(f"no free address left in {self.network.pod_cidr(self.cluster)}")

    def reconcile(self) -> None:
        client = self.plane.client()
        self._register(client)
        self._schedule(client)
        self._update_istiod_hosts(client)
        pods = client.get(f"/api/v1/pods?fieldSelector=spec.nodeName={self.name}")["items"]
        seen = set()
        for obj in pods:
            uid = obj["metadata"]["uid"]
            seen.add(uid)
            run = self.pods.get(uid)
            if run is None:
                run = self.pods[uid] = PodRun(self, obj)
            try:
                if obj["metadata"].get("deletionTimestamp"):
                    if run.terminate(client, obj):
                        self.pods.pop(uid)
                    continue
                run.sync(client, obj)
            except ApiError as error:
                if error.status != 404:
                    raise
        for uid in [u for u in self.pods if u not in seen]:
            self.pods.pop(uid).tear_down()  # deleted while we were not looking
        for run in self.pods.values():
            run.write_etc()

    def _register(self, client: KubeClient) -> None:
        if time.monotonic() - self._heartbeat < HEARTBEAT_SECONDS:
            return
        path = f"/api/v1/nodes/{self.name}"
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            # Istio's locality: region/zone of the node its endpoints run on.
            "topology.kubernetes.io/region": self.cluster,
            "topology.kubernetes.io/zone": f"{self.cluster}-a",
        }
        try:
            client.get(path)
        except ApiError as error:
            if error.status != 404:
                raise
            client.request(
                "POST",
                "/api/v1/nodes",
                {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.name, "labels": labels},
                 "spec": {"podCIDR": str(self.network.pod_cidr(self.cluster))}},
            )  # fmt: skip
        stamp = now()
        conditions = [
            {"type": t, "status": "False", "reason": f"KubeletHas{r}", "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}
            for t, r in (("MemoryPressure", "SufficientMemory"), ("DiskPressure", "NoDiskPressure"), ("PIDPressure", "SufficientPID"))
        ] + [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "lab node: runs pods as processes of this host",
              "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}]  # fmt: skip
        client.merge_patch(
            f"{path}/status",
            {
                "status": {
                    "capacity": NODE_CAPACITY,
                    "allocatable": NODE_CAPACITY,
                    "conditions": conditions,
                    "addresses": [
                        {"type": "InternalIP", "address": "127.0.0.1"},
                        {"type": "Hostname", "address": self.name},
                    ],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": self.plane.ports["kubelet"]}},
                    "nodeInfo": {
                        "kubeletVersion": KUBELET_VERSION,
                        "kubeProxyVersion": "",
                        "operatingSystem": "linux",
                        "architecture": "amd64",
                        "containerRuntimeVersion": "lab://processes",
                        "osImage": "mesh lab node",
                        "kernelVersion": os.uname().release,
                        "machineID": self.name,
                        "systemUUID": self.name,
                        "bootID": self.name,
                    },
                }
            },
        )
        self._heartbeat = time.monotonic()

    def _schedule(self, client: KubeClient) -> None:
        """Bind every pod no scheduler placed to this node (a cluster of one node)."""
        pending = client.get("/api/v1/pods?fieldSelector=spec.nodeName=")["items"]
        for obj in pending:
            md = obj["metadata"]
            if (
                md.get("deletionTimestamp")
                or obj["spec"].get("schedulerName", "default-scheduler") != "default-scheduler"
            ):
                continue
            try:
                client.request(
                    "POST",
                    f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}/binding",
                    {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": md["name"], "uid": md["uid"]},
                     "target": {"apiVersion": "v1", "kind": "Node", "name": self.name}},
                )  # fmt: skip
            except ApiError as error:
                if error.status not in (404, 409):
                    raise

    def _update_istiod_hosts(self, client: KubeClient) -> None:
        slices = client.get("/apis/discovery.k8s.io/v1/namespaces/istio-system/endpointslices")["items"]
        hosts: dict[str, list[str]] = {}
        for s in slices:
            service = (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name", "")
            if not service.startswith(ISTIOD_SERVICE_PREFIX):
                continue
            ready = [e["addresses"][0] for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready")]
            if ready:
                base = f"{service}.istio-system"
                hosts.setdefault(sorted(ready)[0], []).extend([f"{base}.svc", f"{base}.svc.cluster.local"])
        self.istiod_hosts = sorted(hosts.items())

    def stop(self) -> None:
        """The node stops: its pods' processes stop (the pods stay in the API, as on a node that
        went away)."""
        for run in self.pods.values():
            run._signal(signal.SIGTERM, run.netns_inode)


class NodeAgent(standin.Loop):
    """Every cluster's node, each reconciled in a thread of its own (a slow pod on one node does
    not hold up the others)."""

    def __init__(self, planes: list[ControlPlane], lab_network: namespaces.LabNetwork):
        super().__init__()
        relay = ApiRelay(p.ports["apiserver"] for p in planes)
        self.nodes = {p.name: Node(p, lab_network, relay) for p in planes}

    def cluster_names(self) -> list[str]:
        return list(self.nodes)

    def reconcile_cluster(self, name: str) -> None:
        self.nodes[name].reconcile()

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        def loop(name: str) -> None:
            while not stop.is_set():
                self.reconcile_one(name)
                stop.wait(interval)

        threads = [threading.Thread(target=loop, args=(n,), daemon=True) for n in self.nodes]
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
        finally:
            self.stopped()

    def stopped(self) -> None:
        for node in self.nodes.values():
            node.stop()


def from_lab_dir(dir: Path) -> NodeAgent:
    state = json.loads((dir / "lab.json").read_text())
    return NodeAgent(standin.lab_planes(dir), namespaces.LabNetwork.from_json(state["network"]))


if __name__ == "__main__":
    standin.main("lab.nodes.node", __doc__, from_lab_dir)
