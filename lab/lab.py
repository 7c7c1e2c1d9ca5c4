"""A lab of independent Kubernetes control planes on 127.0.0.1.

State lives in one directory: lab.json (what runs where, machine-readable),
kubeconfig (one context per cluster), and a folder per cluster with its PKI,
etcd data and logs. lab.json is rewritten after every process start, so `down`
can clean up a lab whose `up` died half way.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import ssl
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from threading import Lock

import yaml

from . import procs
from .clusters import crds
from .clusters.controlplane import ABOVE_ETCD, CERT_MANAGER_CONTROLLER, KUBELET_API, ControlPlane
from .clusters.kubeapi import ApiError
from .network.namespaces import LabNetwork
from .nodes import node, pod_state
from .toolchain import (
    REPO,
    cert_manager_binaries,
    cert_manager_crds,
    istio_binaries,
    kubelet_api_binaries,
    kubernetes_binaries,
    sail_operator_binary,
    SAIL_OPERATOR,
)
from .vault.client import VaultHandle

DEFAULT_CLUSTERS = ("east", "west")
# istiod's listeners (the istiod chart's container ports), by pilot-discovery's flag for each.
ISTIOD_PORTS = {
    "httpAddr": 8080,
    "grpcAddr": 15010,
    "secureGRPCAddr": 15012,
    "monitoringAddr": 15014,
    "httpsAddr": 15017,
}
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def default_dir() -> Path:
    return Path(os.environ.get("MESH_LAB_DIR") or Path.home() / ".cache" / "mesh-lab")


@dataclass(frozen=True)
class Cluster:
    name: str
    context: str
    server: str
    ca_file: Path
    egress_cidrs: tuple[str, ...] = ("127.0.0.0/8",)
    """Where the cluster's traffic to the others comes from: its node's address on the lab's
    network (loopback for a lab without nodes)."""


class Lab:
    """`with Lab(dir, clusters=["east", "west"]) as lab:` brings the clusters up
    and takes them down again; `up()`/`down()` do the same explicitly."""

    def __init__(
        self,
        dir: str | Path | None = None,
        clusters=DEFAULT_CLUSTERS,
        crds_dir: str | Path | None = None,
        standin: bool = True,
        cert_manager: bool = True,
        vault: bool = False,
    ):
        # Absolute: the path is the marker that identifies the lab's processes.
        self.dir = Path(dir or default_dir()).resolve()
        self.names = list(clusters)
        # Names become kubeconfig contexts and folder names: keep them DNS labels.
        if not self.names or len(set(self.names)) != len(self.names) or not all(_NAME.fullmatch(n) for n in self.names):
            raise ValueError(f"cluster names must be unique lowercase DNS labels: {self.names}")
        self.crds_dir = Path(crds_dir) if crds_dir else crds.default_dir()
        # The nodes, their network, the load balancers and the Sail operator (one per cluster):
        # without them the clusters run no pods and nothing reports on Istio resources.
        self.standin = standin
        # One cert-manager controller per cluster (the real one: toolchain/cert-manager.sh), its
        # CRDs installed with the others.
        self.cert_manager = cert_manager
        # The Vault stand-in (lab/vault/server.py): one for the whole lab, as one Vault serves every
        # cluster of a mesh. `lab.vault` is its handle.
        self.vault_standin = vault
        self._planes: dict[str, ControlPlane] = {}
        # The data plane (with the stand-ins): each cluster's node (lab/nodes/node.py) on the lab's
        # network (lab/network/namespaces.py), and its load balancers (lab/network/loadbalancer.py).
        self.network: LabNetwork | None = None
        self._node_pid: int | None = None
        self._lb_pid: int | None = None
        self._vault_pid: int | None = None
        self._vault_port: int | None = None
        self._lock = Lock()

    # -- public API --------------------------------------------------------

    @property
    def kubeconfig_path(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def state_path(self) -> Path:
        return self.dir / "lab.json"

    @property
    def clusters(self) -> list[Cluster]:
        return [
            Cluster(
                p.name,
                p.name,
                p.server,
                p.pki.ca_cert,
                tuple(self.network.egress_cidrs(p.name)) if self.network else ("127.0.0.0/8",),
            )
            for p in self._planes.values()
        ]

    @property
    def vault_log(self) -> Path:
        return self.dir / "vault-pki.log"

    @property
    def vault(self) -> VaultHandle:
        """The Vault stand-in: its address, serving CA, root token, a client, and the set-ups of a
        PKI mount and of Kubernetes auth for a cluster (lab/vault/client.py)."""
        if not self.vault_standin or self._vault_port is None:
            raise RuntimeError(f"the lab in {self.dir} runs no Vault stand-in (Lab(vault=True), `lab up --vault`)")
        state = self.dir / "vault"
        return VaultHandle(
            address=f"https://127.0.0.1:{self._vault_port}",
            ca_bundle=(state / "serving" / "ca.crt").read_text(),
            root_token=(state / "root-token").read_text().strip(),
            pid=self._vault_pid,
            log=str(self.vault_log),
            clusters={p.name: (p.client(), p.pki.ca_cert.read_text()) for p in self._planes.values()},
        )

    @classmethod
    def load(cls, dir: str | Path | None = None) -> "Lab":
        """The lab recorded in dir, to inspect or stop it."""
        lab = cls(dir)
        lab._load_state()
        return lab

    def up(self) -> "Lab":
        """Start every cluster. A lab already recorded in dir is stopped first."""
        if self.dir.exists():
            self._down_existing()
        bins = self._binaries()
        if self.standin:
            istio_binaries()  # built now, not by the node in the background
        crd_docs = crds.load(self.crds_dir)
        if self.cert_manager:
            crd_docs += crds.load(cert_manager_crds())
        self.dir.mkdir(parents=True, exist_ok=True)
        self._save()  # from now on the dir is recognisably a lab's, for `down`
        # At most four clusters come up at once: on a small machine (2 cores) more API servers
        # compiling the CRDs' schemas at the same time answer too slowly (seen with 8).
        pool = ThreadPoolExecutor(min(len(self.names), 4))
        try:
            taken: set[int] = set()
            for name in self.names:
                plane = ControlPlane(name, self.dir / name, cert_manager=self.cert_manager, sail_operator=self.standin)
                plane.prepare(taken)
                if self.standin:
                    plane.ports["kubelet"] = procs.free_port(taken)
                self._planes[name] = plane
            self._write_kubeconfig()
            self._save()
            if self.standin:
                self.network = LabNetwork.allocate(self.names)
                self._save()
                node.mount_pod_view(self.dir, self.network.prefix)
            if self.vault_standin:  # needs no cluster: it starts while they do
                self._vault_port = procs.free_port(taken)
                self._vault_pid = self._start_module(
                    "vault.server", self.vault_log.name, "--port", str(self._vault_port)
                )
                self._save()
            list(pool.map(lambda p: self._bring_up(p, bins, crd_docs), self._planes.values()))
            if self.standin:
                self._start_data_plane()
            if self.vault_standin:
                self._wait_vault()
        except BaseException:
            # Stopping the processes first makes the other clusters' threads
            # fail fast; the second stop catches what they started meanwhile.
            # The dir stays: its logs say what went wrong.
            for p in self._planes.values():
                p.cancel.set()
            self._stop_processes()
            pool.shutdown(wait=True)
            self._stop_processes()
            raise
        finally:
            pool.shutdown()
        return self

    def down(self) -> None:
        """Stop every process of the lab and remove its directory."""
        if not self._planes and self.state_path.exists():
            self._load_state()  # a Lab object made for a dir another process brought up
        self._stop_processes()
        shutil.rmtree(self.dir, ignore_errors=True)

    def stop_cluster(self, name: str) -> None:
        """Make one cluster unreachable: its apiserver (and controller manager, and cert-manager)
        stop, etcd keeps running with the cluster's state."""
        self._planes[name].stop(ABOVE_ETCD)
        self._save()

    def start_cluster(self, name: str) -> None:
        """Bring a stopped cluster back, on the same port, with its state intact."""
        plane = self._planes[name]
        bins = self._binaries()
        running = plane.running()
        if not running["etcd"]:
            plane.start_etcd(bins, self._save)
        if not running["kube-apiserver"]:
            plane.start_apiserver(bins, self._save)
        if not running["kube-controller-manager"]:
            plane.start_controller_manager(bins, self._save)
        client = plane.client()
        crds.wait_usable(client, crds.installed(client))
        if plane.cert_manager and not running[CERT_MANAGER_CONTROLLER]:
            plane.start_cert_manager(bins, self._save)
        if plane.sail_operator and not running[SAIL_OPERATOR]:
            plane.start_sail_operator(bins, self._save)
        plane.wait_controller_manager()
        if plane.cert_manager:
            plane.wait_cert_manager()
        if plane.sail_operator:
            plane.wait_sail_operator()

    def stop_operators(self) -> None:
        """Stop every cluster's Sail operator and the load-balancer stand-in: statuses and
        load-balancer addresses stay as they are, so a test can take them away without the
        operator putting them back a second later. The nodes and their pods (istiod among them)
        keep running, and the network keeps forwarding each load balancer's address as it was."""
        for plane in self._planes.values():
            plane.stop((SAIL_OPERATOR,))
        procs.stop([self._lb_pid] if self._lb_pid else [], str(self.dir))
        self._lb_pid = None
        self._save()

    def start_operators(self) -> None:
        """Start them again (the operators reconcile every resource as they start)."""
        bins = self._binaries()
        for plane in self._planes.values():
            if plane.sail_operator and not plane.running()[SAIL_OPERATOR]:
                plane.start_sail_operator(bins, self._save)
        for plane in self._planes.values():
            if plane.sail_operator:
                plane.wait_sail_operator()
        self._start_data_plane()

    def istiods(self) -> dict[str, dict]:
        """Each cluster's istiod pod as its node runs it (`<cluster>/pods/istio-system.<pod>/pod.json`),
        by its `app` label: pid, pod IP, ports, log, readiness."""
        found: dict[str, dict] = {}
        for pod_dir in pod_state.pod_dirs(self.dir):
            state = pod_state.read_state(pod_dir)
            if state.get("namespace") != "istio-system" or state.get("app") != "istiod":
                continue
            discovery = (state.get("containers") or {}).get("discovery") or {}
            ip = state.get("ip")
            found.setdefault(state["cluster"], {})["istiod"] = {
                **state,
                "pid": discovery.get("pid"),
                "running": bool(discovery.get("running")),
                "log": discovery.get("log"),
                "ports": {flag: f"{ip}:{port}" for flag, port in ISTIOD_PORTS.items()},
            }
        return found

    def status(self) -> dict:
        clusters = {}
        for p in self._planes.values():
            try:
                ready = p.client().get("/readyz") == "ok"
            except (OSError, ApiError):
                ready = False
            clusters[p.name] = {"server": p.server, "ready": ready, "processes": p.running()}
            if p.cert_manager:
                clusters[p.name]["cert_manager"] = {
                    "pid": p.pids.get(CERT_MANAGER_CONTROLLER),
                    "healthz": p.cert_manager_healthz,
                    "ready": p.cert_manager_ready(),
                    "log": str(p.dir / f"{CERT_MANAGER_CONTROLLER}.log"),
                }
        istiods = self.istiods()
        for name, cluster in clusters.items():
            cluster["istiod"] = istiods.get(name, {})
        node = procs.alive(self._node_pid, str(self.dir)) if self.standin else "disabled"
        balancers = procs.alive(self._lb_pid, str(self.dir)) if self.standin else "disabled"
        vault: dict | str = "disabled"
        if self.vault_standin:
            vault = {
                "pid": self._vault_pid,
                "running": procs.alive(self._vault_pid, str(self.dir)),
                "address": f"https://127.0.0.1:{self._vault_port}",
                "ready": self._vault_ready(),
                "log": str(self.vault_log),
            }
        return {
            "dir": str(self.dir),
            "kubeconfig": str(self.kubeconfig_path),
            "clusters": clusters,
            "node": node,
            "load_balancers": balancers,
            "network": self.network.to_json() if self.network else None,
            "vault_standin": vault,
        }

    def __enter__(self) -> "Lab":
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()

    # -- internals ---------------------------------------------------------

    def _binaries(self) -> dict[str, str]:
        return {
            **kubernetes_binaries(),
            **(cert_manager_binaries() if self.cert_manager else {}),
            **(kubelet_api_binaries() if self.standin else {}),
            **({SAIL_OPERATOR: sail_operator_binary()} if self.standin else {}),
        }

    def _bring_up(self, plane: ControlPlane, bins: dict[str, str], crd_docs: list[dict]) -> None:
        plane.start_etcd(bins, self._save)
        plane.start_apiserver(bins, self._save)
        plane.start_controller_manager(bins, self._save)
        crds.install(plane.client(), crd_docs)
        # After the CRDs: started before them, its informers would back off retrying their lists.
        if plane.cert_manager:
            plane.start_cert_manager(bins, self._save)
        if plane.sail_operator:
            plane.start_sail_operator(bins, self._save)
        if KUBELET_API in plane.components:
            plane.start_kubelet_api(bins, self._save)
        plane.wait_controller_manager()
        if plane.cert_manager:
            plane.wait_cert_manager()
        if plane.sail_operator:
            plane.wait_sail_operator()

    def _start_module(self, module: str, log: str, *args: str) -> int:
        """`python -m lab.<module>` for this lab, its output in `<dir>/<log>`."""
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        return procs.start([sys.executable, "-m", f"lab.{module}", "--dir", str(self.dir), *args], self.dir / log, env)

    def _vault_ready(self) -> bool:
        """The stand-in's /v1/sys/health answers 200 (initialized, unsealed, active)."""
        ca = self.dir / "vault" / "serving" / "ca.crt"
        if not ca.exists():
            return False
        try:
            context = ssl.create_default_context(cafile=str(ca))
            url = f"https://127.0.0.1:{self._vault_port}/v1/sys/health"
            with urllib.request.urlopen(url, context=context, timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    def _wait_vault(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self._vault_ready():
            if not procs.alive(self._vault_pid, str(self.dir)) or time.monotonic() > deadline:
                tail = "\n".join(self.vault_log.read_text(errors="replace").splitlines()[-20:])
                raise RuntimeError(f"the Vault stand-in did not answer on port {self._vault_port}:\n{tail}")
            time.sleep(0.1)

    def _start_data_plane(self) -> None:
        if not procs.alive(self._node_pid, str(self.dir)):
            self._node_pid = self._start_module("nodes.node", "node.log")
            self._save()
        if not procs.alive(self._lb_pid, str(self.dir)):
            self._lb_pid = self._start_module("network.loadbalancer", "loadbalancer.log")
            self._save()

    def _stop_processes(self) -> None:
        marker = str(self.dir)
        # Clients first, etcd last, so nothing logs a flood of connection errors. The pods'
        # processes go with the lab's network namespaces (every process in them is killed).
        try:
            procs.stop([p for p in (self._node_pid, self._lb_pid, self._vault_pid) if p], marker)
            self._node_pid = self._lb_pid = self._vault_pid = None
        finally:
            # Whatever failed, the lab's namespaces, routes and mount must not outlive it.
            if self.network is not None:
                try:
                    self.network.down()
                finally:
                    node.unmount_pod_view(self.network.prefix)
                self.network = None  # its block is free now: never tear down whoever takes it next
        for components in (ABOVE_ETCD + (KUBELET_API,), ("etcd",)):
            procs.stop([p.pids[c] for p in self._planes.values() for c in components if c in p.pids], marker)
            for p in self._planes.values():
                for c in components:
                    p.pids.pop(c, None)
        if self.state_path.exists():
            self._save()

    def _down_existing(self) -> None:
        if self.state_path.exists():
            Lab(self.dir).down()
        elif any(self.dir.iterdir()):
            # Without lab.json this is not a lab's dir: never delete someone's files.
            raise RuntimeError(f"{self.dir} exists and holds no lab.json; remove it or choose another --dir")

    def _load_state(self) -> None:
        state = json.loads(self.state_path.read_text())
        self._planes = {c["name"]: ControlPlane.from_json(c) for c in state["clusters"]}
        self.names = list(self._planes) or self.names
        self.standin = state.get("standin", True)
        self.cert_manager = state.get("cert_manager", False)
        self._node_pid = state.get("node_pid")
        self._lb_pid = state.get("loadbalancer_pid")
        self.network = LabNetwork.from_json(state["network"]) if state.get("network") else None
        vault = state.get("vault") or {}
        self.vault_standin = bool(vault)
        self._vault_pid, self._vault_port = vault.get("pid"), vault.get("port")

    def _save(self) -> None:
        with self._lock:  # clusters start in parallel threads
            state = {
                "kubeconfig": str(self.kubeconfig_path),
                "standin": self.standin,
                "cert_manager": self.cert_manager,
                "node_pid": self._node_pid,
                "loadbalancer_pid": self._lb_pid,
                "network": self.network.to_json() if self.network else None,
                "vault": {"pid": self._vault_pid, "port": self._vault_port} if self.vault_standin else None,
                "clusters": [p.to_json() for p in self._planes.values()],
            }
            tmp = self.state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state, indent=2) + "\n")
            os.replace(tmp, self.state_path)  # never a half-written lab.json

    def _write_kubeconfig(self) -> None:
        # Data embedded rather than file paths: the file stands alone, e.g. as a
        # Pulumi provider's `kubeconfig` input.
        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        planes = list(self._planes.values())
        self.kubeconfig_path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": planes[0].name,
                    "clusters": [
                        {
                            "name": p.name,
                            "cluster": {"server": p.server, "certificate-authority-data": b64(p.pki.ca_cert)},
                        }
                        for p in planes
                    ],
                    "users": [
                        {
                            "name": f"{p.name}-admin",
                            "user": {
                                "client-certificate-data": b64(p.pki.admin_cert),
                                "client-key-data": b64(p.pki.admin_key),
                            },
                        }
                        for p in planes
                    ],
                    "contexts": [
                        {"name": p.name, "context": {"cluster": p.name, "user": f"{p.name}-admin"}} for p in planes
                    ],
                },
                sort_keys=False,
            )
        )
