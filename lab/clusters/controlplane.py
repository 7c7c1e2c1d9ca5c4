"""One cluster's control plane: etcd, kube-apiserver, kube-controller-manager, and (options)
cert-manager's controller and the Sail operator.

Only the controllers the project needs run (service-account tokens, namespaces,
garbage collection); there is no scheduler, kubelet or container runtime, so
Pods are stored but never run. cert-manager's controller runs out of cluster, as a process
beside the API server, with the cluster's admin credentials (in a cluster it runs as a pod with
its chart's RBAC). So does the Sail operator (the real one, toolchain/sail-operator.sh), in its
namespace `sail-operator` as its install makes it: Helm releases of the charts it renders are
stored there.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .. import procs
from . import pki
from .kubeapi import ApiError, KubeClient

from ..toolchain import CERT_MANAGER, KUBERNETES as COMPONENTS, SAIL_OPERATOR

CERT_MANAGER_CONTROLLER = CERT_MANAGER[0]
# cert-manager watches only istio-system, where the mesh's `cacerts` and their Issuers live
# (ClusterIssuers are then off, as upstream does when scoped to a namespace).
CERT_MANAGER_NAMESPACE = "istio-system"
# The operator's namespace (where OLM or its Helm chart installs it): its Helm releases live there.
SAIL_OPERATOR_NAMESPACE = "sail-operator"
# What talks to or is the API server: stopped to make a cluster unreachable, and before etcd.
ABOVE_ETCD = (SAIL_OPERATOR, CERT_MANAGER_CONTROLLER, "kube-controller-manager", "kube-apiserver")

KCM_CONTROLLERS = ",".join(
    (
        "serviceaccount-token-controller",
        "serviceaccount-controller",
        "namespace-controller",
        "garbage-collector-controller",
        # Pods come from Deployments and DaemonSets as on any cluster, and their addresses reach
        # Endpoints and EndpointSlices (what istiod and the load balancers read).
        "deployment-controller",
        "replicaset-controller",
        "daemonset-controller",
        "endpoints-controller",
        "endpointslice-controller",
        # kube-root-ca.crt in every namespace: the CA of each pod's API-access volume.
        "root-ca-certificate-publisher-controller",
    )
)
# The node's kubelet API (lab/nodes/node.py; exec, logs, port-forward): not part of the control plane,
# so a cluster made unreachable (`stop_cluster`) keeps it, as a node keeps running.
KUBELET_API = "lab-kubelet-api"


@dataclass
class ControlPlane:
    """State of one cluster; its fields are what lab.json records."""

    name: str
    dir: Path
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    cert_manager: bool = False  # runs cert-manager's controller
    sail_operator: bool = False  # runs the Sail operator
    # Set to abandon a start-up in progress (Ctrl-C while clusters start in threads).
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def pki(self) -> pki.ClusterPKI:
        return pki.ClusterPKI(self.dir / "pki")

    @property
    def components(self) -> tuple[str, ...]:
        node = (KUBELET_API,) if "kubelet" in self.ports else ()
        operator = (SAIL_OPERATOR,) if self.sail_operator else ()
        return COMPONENTS + ((CERT_MANAGER_CONTROLLER,) if self.cert_manager else ()) + operator + node

    @property
    def admin_kubeconfig(self) -> Path:
        return self.dir / "admin.kubeconfig"

    def client(self) -> KubeClient:
        p = self.pki
        return KubeClient(self.server, p.ca_cert, p.admin_cert, p.admin_key)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "context": self.name,
            "server": self.server,
            "ca_file": str(self.pki.ca_cert),
            "dir": str(self.dir),
            "ports": self.ports,
            "pids": self.pids,
            "cert_manager": self.cert_manager,
            "sail_operator": self.sail_operator,
        }

    @classmethod
    def from_json(cls, d: dict) -> "ControlPlane":
        return cls(
            d["name"],
            Path(d["dir"]),
            dict(d["ports"]),
            dict(d["pids"]),
            d.get("cert_manager", False),
            d.get("sail_operator", False),
        )

    # -- lifecycle ---------------------------------------------------------

    def prepare(self, taken_ports: set[int]) -> None:
        """Allocate ports and write PKI; nothing runs yet."""
        optional = (("cert_manager_healthz",) if self.cert_manager else ()) + (
            ("sail_operator_healthz",) if self.sail_operator else ()
        )
        for key in ("etcd", "etcd_peer", "apiserver") + optional:
            self.ports.setdefault(key, procs.free_port(taken_ports))
        pki.create(self.pki.dir, self.name)
        self._write_admin_kubeconfig()

    def start_etcd(self, bins: dict[str, str], on_start) -> None:
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd_peer']}"
        self._start(
            "etcd",
            [
                bins["etcd"],
                f"--name={self.name}",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster={self.name}={peer}",
                # Durability is worthless for a throwaway lab; fsync dominates start time.
                "--unsafe-no-fsync",
            ],
            on_start,
        )
        self._wait("etcd", lambda: b'"health":"true"' in _http_get(f"{client}/health"), 30)

    def start_apiserver(self, bins: dict[str, str], on_start) -> None:
        p = self.pki
        port = self.ports["apiserver"]
        self._start(
            "kube-apiserver",
            [
                bins["kube-apiserver"],
                f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--tls-cert-file={p.server_cert}",
                f"--tls-private-key-file={p.server_key}",
                f"--client-ca-file={p.ca_cert}",
                f"--service-account-issuer=https://127.0.0.1:{port}",
                f"--service-account-key-file={p.sa_pub}",
                f"--service-account-signing-key-file={p.sa_key}",
                "--authorization-mode=RBAC",
                "--service-cluster-ip-range=10.0.0.0/24",
                # No kubelets register endpoints; the apiserver must not try to either.
                "--endpoint-reconciler-type=none",
                "--allow-privileged=true",
                # Webhooks and aggregated APIs are called at their Service's endpoints (pod IPs,
                # reachable from this host), not at cluster IPs: no kube-proxy runs here.
                "--enable-aggregator-routing=true",
                # The node's kubelet API, for exec, logs and port-forward: the node's address is
                # 127.0.0.1 (each node its own port), its certificate from the cluster CA.
                f"--kubelet-client-certificate={p.kubelet_client_cert}",
                f"--kubelet-client-key={p.kubelet_client_key}",
                f"--kubelet-certificate-authority={p.ca_cert}",
                "--kubelet-preferred-address-types=InternalIP",
            ],
            on_start,
        )
        client = self.client()

        def ready() -> bool:
            try:
                return client.get("/readyz") == "ok" and bool(client.get("/api/v1/namespaces/default"))
            except (OSError, ApiError):
                return False

        self._wait("kube-apiserver", ready, 90)

    def start_controller_manager(self, bins: dict[str, str], on_start) -> None:
        p = self.pki
        self._start(
            "kube-controller-manager",
            [
                bins["kube-controller-manager"],
                f"--kubeconfig={self.admin_kubeconfig}",
                "--leader-elect=false",
                "--secure-port=0",
                f"--service-account-private-key-file={p.sa_key}",
                f"--root-ca-file={p.ca_cert}",
                f"--controllers={KCM_CONTROLLERS}",
            ],
            on_start,
        )

    def wait_controller_manager(self) -> None:
        # The serviceaccount controller creating default/default is the sign that
        # the controller manager is up and its informers have synced.
        client = self.client()

        def ready() -> bool:
            try:
                return bool(client.get("/api/v1/namespaces/default/serviceaccounts/default"))
            except (OSError, ApiError):
                return False

        self._wait("kube-controller-manager", ready, 60)

    def start_cert_manager(self, bins: dict[str, str], on_start) -> None:
        """cert-manager's controller against this cluster; wait_cert_manager() waits for it."""
        self._start(
            CERT_MANAGER_CONTROLLER,
            [
                bins[CERT_MANAGER_CONTROLLER],
                f"--kubeconfig={self.admin_kubeconfig}",
                f"--namespace={CERT_MANAGER_NAMESPACE}",
                f"--cluster-resource-namespace={CERT_MANAGER_NAMESPACE}",
                "--leader-elect=false",
                # /livez and /readyz on loopback; no metrics endpoint.
                f"--healthz-listen-address={self.cert_manager_healthz}",
            ],
            on_start,
        )

    def start_sail_operator(self, bins: dict[str, str], on_start) -> None:
        """The Sail operator against this cluster, out of cluster as its own `make run` runs it:
        the cluster's kubeconfig, POD_NAMESPACE (its namespace, made here first), a config file
        (in a pod, its annotations through the downward API: none here), no leader election, its
        probes on a port of its own and no metrics endpoint. wait_sail_operator() waits for it."""
        self.client().apply(
            f"/api/v1/namespaces/{SAIL_OPERATOR_NAMESPACE}",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SAIL_OPERATOR_NAMESPACE}},
            "mesh-lab",
        )
        config = self.dir / "sail-operator" / "config.properties"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.touch()
        self._start(
            SAIL_OPERATOR,
            [
                bins[SAIL_OPERATOR],
                f"--kubeconfig={self.admin_kubeconfig}",
                f"--config-file={config}",
                "--leader-elect=false",
                f"--health-probe-bind-address={self.sail_operator_healthz}",
                "--metrics-bind-address=0",
            ],
            on_start,
            env={"POD_NAMESPACE": SAIL_OPERATOR_NAMESPACE},
        )

    @property
    def sail_operator_healthz(self) -> str:
        return f"127.0.0.1:{self.ports['sail_operator_healthz']}"

    def sail_operator_ready(self) -> bool:
        return _readyz(self.sail_operator_healthz)

    def wait_sail_operator(self) -> None:
        self._wait(SAIL_OPERATOR, self.sail_operator_ready, 60)

    def start_kubelet_api(self, bins: dict[str, str], on_start) -> None:
        """The node's kubelet API (exec, logs, port-forward into its pods), on 127.0.0.1."""
        p = self.pki
        (self.dir / "pods").mkdir(parents=True, exist_ok=True)
        self._start(
            KUBELET_API,
            [
                bins[KUBELET_API],
                f"--listen=127.0.0.1:{self.ports['kubelet']}",
                f"--cert={p.kubelet_cert}",
                f"--key={p.kubelet_key}",
                f"--client-ca={p.ca_cert}",
                f"--pods-dir={self.dir / 'pods'}",
            ],
            on_start,
        )
        self._wait(KUBELET_API, lambda: self.kubelet_api_ready(), 30)

    def kubelet_api_ready(self) -> bool:
        p = self.pki
        context = ssl.create_default_context(cafile=str(p.ca_cert))
        context.load_cert_chain(str(p.kubelet_client_cert), str(p.kubelet_client_key))
        try:
            with urllib.request.urlopen(
                f"https://127.0.0.1:{self.ports['kubelet']}/healthz", context=context, timeout=2
            ) as r:
                return r.status == 200
        except OSError:
            return False

    @property
    def cert_manager_healthz(self) -> str:
        return f"127.0.0.1:{self.ports['cert_manager_healthz']}"

    def cert_manager_ready(self) -> bool:
        """Its /readyz: 200 once its informers have synced (so the CRDs are served)."""
        return _readyz(self.cert_manager_healthz)

    def wait_cert_manager(self) -> None:
        self._wait(CERT_MANAGER_CONTROLLER, self.cert_manager_ready, 60)

    def stop(self, components: tuple[str, ...] | None = None) -> None:
        components = self.components if components is None else components
        procs.stop([self.pids[c] for c in components if c in self.pids], str(self.dir))
        for c in components:
            self.pids.pop(c, None)

    def running(self) -> dict[str, bool]:
        return {c: procs.alive(self.pids.get(c), str(self.dir)) for c in self.components}

    # -- helpers -----------------------------------------------------------

    def _start(self, component: str, argv: list[str], on_start, env: dict[str, str] | None = None) -> None:
        if self.cancel.is_set():
            raise RuntimeError(f"{self.name}: start-up cancelled")
        self.pids[component] = procs.start(
            argv, self.dir / f"{component}.log", dict(os.environ, **env) if env else None
        )
        on_start()  # record the pid before waiting, so `down` finds a half-started lab

    def _wait(self, component: str, check, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.cancel.is_set():
            if not procs.alive(self.pids.get(component), str(self.dir)):
                raise RuntimeError(f"{self.name}: {component} exited:\n{self._log_tail(component)}")
            try:
                if check():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        if self.cancel.is_set():
            raise RuntimeError(f"{self.name}: start-up cancelled")
        raise RuntimeError(f"{self.name}: {component} not ready after {timeout:.0f}s:\n{self._log_tail(component)}")

    def _log_tail(self, component: str, lines: int = 20) -> str:
        log = self.dir / f"{component}.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _write_admin_kubeconfig(self) -> None:
        p = self.pki
        self.admin_kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": self.name,
                    "clusters": [
                        {"name": self.name, "cluster": {"server": self.server, "certificate-authority": str(p.ca_cert)}}
                    ],
                    "users": [
                        {
                            "name": self.name,
                            "user": {"client-certificate": str(p.admin_cert), "client-key": str(p.admin_key)},
                        }
                    ],
                    "contexts": [{"name": self.name, "context": {"cluster": self.name, "user": self.name}}],
                }
            )
        )


def _readyz(address: str) -> bool:
    """A controller's /readyz on `address` (host:port) answers `ok`."""
    try:
        return _http_get(f"http://{address}/readyz").strip() == b"ok"
    except OSError:
        return False


def _http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.read()
