"""STAND-IN for the kubelet that would run istiod's pod, and for the two controllers that make and
report on it (the ReplicaSet controller's Pod, the Deployment's status).

The lab has no container runtime, but it has Istio's real istiod (`pilot-discovery`, built by
toolchain/istio.sh). For every Deployment labelled `app=istiod` in `istio-system` (the one Sail
renders from the `Istio` resource; here the operator stand-in renders it with istioctl), this
process does what the kubelet does for that Deployment's one pod, and nothing more:

- the pod's volumes become files under `<lab>/<cluster>/pods/<namespace>.<name>/root`, laid out
  and swapped atomically the way the kubelet's AtomicWriter does (`lab.volume`): the cluster's
  own `cacerts` Secret at `etc/cacerts`, the projected `istio-token`, the API-access token of the
  pod's service account (`istiod`, bound by the chart's ClusterRole, not cluster-admin), all
  re-synced every second and tokens refreshed at 80% of their life;
- the container's args and environment (fieldRefs, resourceFieldRefs, ...) come from the
  Deployment's pod template; the process runs `pilot-discovery` with those args, its working
  directory the pod root, and credentials from a kubeconfig over the service-account token (the
  in-cluster config istiod would use, which cannot be given paths);
- in a pod every istiod listens on its own pod IP; here each gets its own loopback address
  (127.0.1.n) with the template's container ports, so two clusters' istiods never share ports;
- the readiness probe of the template decides readiness; restarts follow the kubelet's back-off;
  a changed pod template (say, new env from the `Istio` resource's values) restarts the process;
- a Pod object for it (what the ReplicaSet controller would create, owned here by the
  Deployment) with the status the kubelet would report: Running, Ready as the probe says, the
  restart count, and as pod IP the loopback address istiod listens on. So `kubectl get pods` and
  `mesh verify` find istiod where they find it on any cluster (label `app=istiod`), and its address
  is that pod IP;
- the Deployment's `status` says whether that one replica is available (the Deployment
  controller's visible effect).

Not made: EndpointSlices for the `istiod` Service. The API server refuses loopback addresses in
them ("may not be in the loopback range"), and nothing in the lab routes Service addresses.

Run by `lab up` as `python -m lab.kubelet_standin --dir DIR`; each istiod's pid, address, ports
and log are in `<pod dir>/pod.json` and `istiod.log`, and `lab status` shows them.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import yaml

from . import pod, procs, standin
from .pod_state import pod_dirs, read_state, write_state
from .controlplane import ControlPlane
from .toolchain import istio_binaries
from .kubeapi import ApiError, KubeClient

NAMESPACE = "istio-system"
SELECTOR = "app=istiod"
# Marks the Pod this stand-in made for a Deployment (in place of a ReplicaSet's pod-template-hash).
POD_LABEL = "lab.mesh/deployment"
# pilot-discovery's flag for the listener of each port of its container (istiod chart ports).
LISTEN_FLAGS = {
    8080: "--httpAddr",
    15010: "--grpcAddr",
    15012: "--secureGRPCAddr",
    15014: "--monitoringAddr",
    15017: "--httpsAddr",
}
CTRLZ_PORT = 9876
BACKOFF_START, BACKOFF_MAX = 10.0, 300.0  # the kubelet's crash-loop back-off


def _bindable(ip: str, ports: list[int]) -> bool:
    for port in ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((ip, port))
            except OSError:
                return False
    return True


def allocate_ip(ports: list[int], taken: set[str]) -> str:
    """A loopback address on which every one of `ports` is free (a pod IP of its own)."""
    for third in range(1, 255):
        for fourth in range(1, 255):
            ip = f"127.0.{third}.{fourth}"
            if ip not in taken and _bindable(ip, ports):
                return ip
    raise RuntimeError("no free loopback address for another istiod")


def _template_hash(deployment: dict) -> str:
    return hashlib.sha256(json.dumps(deployment["spec"]["template"], sort_keys=True).encode()).hexdigest()[:10]


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class IstiodPod:
    """One istiod Deployment's single replica, run as a process of this host."""

    def __init__(self, plane: ControlPlane, deployment: dict, binary: str, taken_ips: set[str]):
        self.plane = plane
        md = deployment["metadata"]
        self.namespace, self.deployment = md["namespace"], md["name"]
        self.dir = plane.dir / "pods" / f"{self.namespace}.{self.deployment}"
        self.binary = binary
        self.log = self.dir / "istiod.log"
        state = read_state(self.dir)
        self.pid: Optional[int] = state.get("pid")
        self.template = state.get("template")
        self.restarts = state.get("restarts", 0)
        self.started_at = state.get("startedAt")
        self._next_start = 0.0
        self._volumes: Optional[pod.Volumes] = None
        self._published: Optional[tuple] = None
        ports = [p["containerPort"] for p in pod.container(deployment["spec"]["template"]).get("ports") or []]
        self.ip = state.get("ip") or allocate_ip(ports, taken_ips)
        taken_ips.add(self.ip)
        self.ready = False

    # -- the pod -------------------------------------------------------------------------

    def identity(self, deployment: dict) -> pod.PodIdentity:
        spec = deployment["spec"]["template"]["spec"]
        return pod.PodIdentity(
            f"{self.deployment}-{_template_hash(deployment)}-lab",
            self.namespace,
            spec.get("serviceAccountName") or "default",
            self.ip,
        )

    def running(self) -> bool:
        return procs.alive(self.pid, str(self.dir))

    def reconcile(self, client: KubeClient, deployment: dict) -> None:
        template = _template_hash(deployment)
        if template != self.template:
            # A new pod template: the old pod goes, a new one comes (a rollout of one replica).
            self.stop()
            self.template, self.restarts, self._volumes = template, 0, None
        identity = self.identity(deployment)
        if self._volumes is None:
            self._volumes = pod.Volumes(
                client, identity, deployment["spec"]["template"], self.dir / "root", self.plane.pki.ca_cert.read_bytes()
            )
        self._volumes.sync()
        if not self.running():
            if self.pid is not None:
                self.restarts += 1
                self._next_start = time.monotonic() + min(BACKOFF_START * 2 ** (self.restarts - 1), BACKOFF_MAX)
                self.pid = None
                with open(self.log, "a") as out:
                    out.write(
                        f"--- lab.kubelet_standin {_now()}: istiod exited; restart {self.restarts} "
                        f"in {self._next_start - time.monotonic():.0f}s\n"
                    )
            if time.monotonic() >= self._next_start:
                self.start(client, deployment, identity)
        c = pod.container(deployment["spec"]["template"])
        self.ready = self.running() and _probe(pod.readiness_url(c, self.ip))
        self.save()
        self.publish(client, deployment, identity)

    def start(self, client: KubeClient, deployment: dict, identity: pod.PodIdentity) -> None:
        c = pod.container(deployment["spec"]["template"])
        assert self._volumes is not None
        env = pod.environment(client, identity, c, self._volumes)
        kubeconfig = self.dir / "kubeconfig"
        sa = self._volumes.service_account_dir
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "in-cluster",
                    "clusters": [
                        {
                            "name": "in-cluster",
                            "cluster": {"server": self.plane.server, "certificate-authority": str(sa / "ca.crt")},
                        }
                    ],
                    # tokenFile is re-read by client-go, so refreshed tokens are used, as in a pod.
                    "users": [{"name": "in-cluster", "user": {"tokenFile": str(sa / "token")}}],
                    "contexts": [{"name": "in-cluster", "context": {"cluster": "in-cluster", "user": "in-cluster"}}],
                }
            )
        )
        args = list(c.get("args") or [])
        listen = []
        for port in c.get("ports") or []:
            flag = LISTEN_FLAGS.get(port["containerPort"])
            if flag:
                listen += [f"{flag}={self.ip}:{port['containerPort']}"]
        # Later flags win: the pod's own args first, then where this host differs from a pod.
        argv = [
            self.binary,
            *args,
            f"--kubeconfig={kubeconfig}",
            *listen,
            f"--ctrlz_address={self.ip}",
            f"--ctrlz_port={CTRLZ_PORT}",
        ]
        proc_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.dir / "root"), **env}
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "a") as out:
            out.write(f"--- lab.kubelet_standin {_now()}: starting {' '.join(argv)}\n")
        self.pid = procs.start(argv, self.log, proc_env, cwd=self.dir / "root")
        self.started_at = _now()

    def stop(self) -> None:
        if self.pid is not None:
            procs.stop([self.pid], str(self.dir))
            self.pid = None
        self.ready = False

    def save(self) -> None:
        state = {
            "cluster": self.plane.name,
            "namespace": self.namespace,
            "deployment": self.deployment,
            "pid": self.pid,
            "ip": self.ip,
            "template": self.template,
            "restarts": self.restarts,
            "startedAt": self.started_at,
            "ready": self.ready,
            "log": str(self.log),
            "ports": {flag.lstrip("-"): f"{self.ip}:{port}" for port, flag in LISTEN_FLAGS.items()},
        }
        write_state(self.dir, state)

    # -- what the controllers would report -------------------------------------------------

    def publish(self, client: KubeClient, deployment: dict, identity: pod.PodIdentity) -> None:
        """The Pod (as the ReplicaSet controller would make it) with the status the kubelet would
        give it, and the Deployment status the Deployment controller would derive from it."""
        generation = deployment["metadata"].get("generation")
        key = (generation, self.ready, self.pid, identity.name)
        if key == self._published:
            return
        self._publish_pod(client, deployment, identity)
        available = 1 if self.ready else 0
        message = (
            "istiod answers its readiness probe" if self.ready else "istiod does not answer its readiness probe yet"
        )
        condition = {
            "type": "Available",
            "status": "True" if self.ready else "False",
            "reason": "MinimumReplicasAvailable" if self.ready else "MinimumReplicasUnavailable",
            "message": f"{message} (lab.kubelet_standin: istiod runs as a process of the lab host)",
            "lastUpdateTime": _now(),
            "lastTransitionTime": _now(),
        }
        client.merge_patch(
            f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{self.deployment}/status",
            {
                "status": {
                    "observedGeneration": generation,
                    "replicas": 1,
                    "updatedReplicas": 1,
                    "readyReplicas": available,
                    "availableReplicas": available,
                    "unavailableReplicas": 1 - available,
                    "conditions": [condition],
                }
            },
        )
        self._published = key

    def _publish_pod(self, client: KubeClient, deployment: dict, identity: pod.PodIdentity) -> None:
        template = deployment["spec"]["template"]
        base = f"/api/v1/namespaces/{self.namespace}/pods"
        for old in client.get(f"{base}?labelSelector={SELECTOR}")["items"]:
            # The pod of an earlier template goes, as in a rollout.
            if old["metadata"]["name"] != identity.name and old["metadata"]["labels"].get(POD_LABEL) == self.deployment:
                client.delete(f"{base}/{old['metadata']['name']}", missing_ok=True)
        try:
            client.get(f"{base}/{identity.name}")
        except ApiError as error:
            if error.status != 404:
                raise
            md = deployment["metadata"]
            client.request(
                "POST",
                base,
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": identity.name,
                        "namespace": self.namespace,
                        "labels": {**(template["metadata"].get("labels") or {}), POD_LABEL: self.deployment},
                        "annotations": template["metadata"].get("annotations") or {},
                        # Gone with its Deployment (the garbage collector runs in the lab).
                        "ownerReferences": [
                            {"apiVersion": "apps/v1", "kind": "Deployment", "name": md["name"], "uid": md["uid"]}
                        ],
                    },
                    "spec": template["spec"],
                },
            )
        c = pod.container(template)
        ready = "True" if self.ready else "False"
        client.merge_patch(
            f"{base}/{identity.name}/status",
            {
                "status": {
                    "phase": "Running" if self.pid else "Pending",
                    "podIP": self.ip,
                    "podIPs": [{"ip": self.ip}],
                    "hostIP": "127.0.0.1",
                    "startTime": self.started_at,
                    "conditions": [
                        {"type": t, "status": ready, "lastTransitionTime": _now()} for t in ("Ready", "ContainersReady")
                    ],
                    "containerStatuses": [
                        {
                            "name": c["name"],
                            "ready": self.ready,
                            "started": bool(self.pid),
                            "restartCount": self.restarts,
                            "image": c.get("image", ""),
                            "imageID": "",
                            "containerID": f"process://{self.pid}" if self.pid else "",
                            "state": {"running": {"startedAt": self.started_at}}
                            if self.pid
                            else {"waiting": {"reason": "CrashLoopBackOff" if self.restarts else "ContainerCreating"}},
                        }
                    ],
                }
            },
        )


def _probe(url: Optional[str]) -> bool:
    if url is None:
        return True
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return 200 <= resp.status < 400
    except (OSError, urllib.error.URLError):
        return False


class KubeletStandIn(standin.Loop):
    def __init__(self, lab_dir: Path, planes: list[ControlPlane], binary: str):
        super().__init__()
        self.lab_dir, self.binary = lab_dir, binary
        self.planes = {p.name: p for p in planes}
        self.pods: dict[tuple[str, str, str], IstiodPod] = {}
        self._taken = {read_state(d).get("ip") for d in pod_dirs(lab_dir)} - {None}

    def cluster_names(self) -> list[str]:
        return list(self.planes)

    def reconcile_cluster(self, name: str) -> None:
        plane = self.planes[name]
        client = plane.client()
        deployments = client.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments?labelSelector={SELECTOR}")["items"]
        seen = set()
        for d in deployments:
            key = (plane.name, d["metadata"]["namespace"], d["metadata"]["name"])
            seen.add(key)
            if key not in self.pods:
                self.pods[key] = IstiodPod(plane, d, self.binary, self._taken)
            try:
                self.pods[key].reconcile(client, d)
            except ApiError as error:
                if error.status != 404:  # the Deployment went while we looked: next round
                    raise
        for key in [k for k in self.pods if k[0] == plane.name and k not in seen]:
            self.pods.pop(key).stop()  # its Deployment is gone: so is its pod

    def stopped(self) -> None:
        for p in self.pods.values():
            p.stop()
            p.save()


def from_lab_dir(dir: Path) -> KubeletStandIn:
    return KubeletStandIn(dir, standin.lab_planes(dir), istio_binaries()["pilot-discovery"])


if __name__ == "__main__":
    standin.main("lab.kubelet_standin", __doc__, from_lab_dir)
