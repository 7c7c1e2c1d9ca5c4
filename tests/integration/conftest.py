"""Integration fixtures: real control planes (the lab), the real Pulumi engine and providers.

Each lab is started once per module and always stopped, also when a test fails or the run is
interrupted (the fixture's finaliser, and `Lab.down` kills by the lab's directory marker).
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import kubernetes
import yaml
from cryptography import x509
from pulumi import automation as auto

from lab import traffic as lab_traffic
from lab.network import namespaces
from lab.nodes import node
from lab.lab import Lab
from mesh import config as mesh_settings
from mesh import verify as v
from mesh.verify import istiod_access, steady
from mesh.verify.clients import pod_exec
from mesh.verify.workloads import pod_ready
from mesh.verify import traffic as one_shot_traffic
from mesh.verify import istiod_answers as istiod_checks

from . import istio_clients
from lab.stack import VENV, mesh_config, open_stack, remove_stack, write_config


@dataclass
class DeployedMesh:
    lab: Lab
    stack: Any
    config: dict
    outputs: dict

    def client(self, cluster: str) -> kubernetes.client.ApiClient:
        """An admin client for one lab cluster."""
        return kubernetes.config.new_client_from_config(str(self.lab.kubeconfig_path), context=cluster)

    def core(self, cluster: str) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.client(cluster))

    def custom(self, cluster: str) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.client(cluster))

    def cluster_config(self, name: str) -> dict:
        return next(c for c in self.config["clusters"] if c["name"] == name)


def changes(preview) -> dict[str, int]:
    """What a preview would change: every operation but `same` and `read` (the program reads
    its own stack's last outputs, which changes nothing)."""
    return {op: n for op, n in preview.change_summary.items() if op not in ("same", "read")}


def update(mesh: DeployedMesh, **changes) -> None:
    """`up` with changed config; the new config and outputs become the mesh's."""
    config = dict(mesh.config, **changes)
    write_config(mesh.stack.name, config)
    result = mesh.stack.up(color="never")
    mesh.config = config
    mesh.outputs = {k: v.value for k, v in result.outputs.items()}


def refused_up(mesh: DeployedMesh, config: dict, on_output: Callable[[str], None] | None = None) -> str:
    """`up` with `config` must fail; returns the engine's message. The mesh's own config is
    written back either way."""
    write_config(mesh.stack.name, config)
    try:
        try:
            mesh.stack.up(color="never", on_output=on_output)
        except auto.CommandError as error:
            return str(error)
        raise AssertionError(f"`up` with {config} was not refused")
    finally:
        write_config(mesh.stack.name, mesh.config)


def lab_status(lab: Lab) -> dict:
    """What `lab status` prints for `lab`, as a user runs it (another process)."""
    from lab.stack import REPO

    shown = subprocess.run(
        [sys.executable, "-m", "lab", "status", "--dir", str(lab.dir)],
        cwd=REPO, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(shown.stdout)


def secret_text(secret, key: str) -> str:
    return base64.b64decode(secret.data[key]).decode()


def cacerts(mesh: DeployedMesh, cluster: str) -> dict[str, str]:
    """A cluster's `cacerts` files, and its `uid` (unchanged when updated in place)."""
    secret = mesh.core(cluster).read_namespaced_secret("cacerts", "istio-system")
    return {"uid": secret.metadata.uid, **{key: secret_text(secret, key) for key in secret.data}}


def remote_client(kubeconfig_text: str) -> kubernetes.client.ApiClient:
    return kubernetes.config.new_client_from_config_dict(yaml.safe_load(kubeconfig_text))


def openssl(*args: str, input_text: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], input=input_text, capture_output=True, text=True)


def new_key_and_request(key: Path, csr: Path, subject: str) -> None:
    """With openssl, a new P-256 key and a certificate request for `subject`."""
    made = openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-subj", subject, "-out", str(csr),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr


def issue(directory: Path, name: str, ca_cert: Path, ca_key: Path, extfile: Path) -> Path:
    """With openssl, a new key and a certificate for it signed by `ca_cert`/`ca_key`, as istiod
    signs workload certificates; returns the certificate (its key is `name`.key beside it)."""
    key, csr, cert = (directory / f"{name}.{suffix}" for suffix in ("key", "csr", "pem"))
    new_key_and_request(key, csr, f"/CN={name}")
    signed = openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca_cert),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        str(extfile),
        "-out",
        str(cert),
    )
    assert signed.returncode == 0, signed.stderr
    return cert


def deploy(
    name: str,
    clusters: list[str],
    tmp_path_factory,
    log: Callable[[str], None] = print,
    in_mesh: Optional[list[str]] = None,
    **overrides,
):
    """Start a lab, `up` the mesh on it (the lab stack's config and `overrides`; of the clusters
    `in_mesh` only, when given), hand it to the tests, then destroy and stop."""
    lab = Lab(tmp_path_factory.mktemp(f"lab-{name}"), clusters=clusters)
    lab.up()
    stack = None
    try:
        config = mesh_config(lab.clusters, lab.kubeconfig_path, **overrides)
        if in_mesh is not None:
            config["clusters"] = [c for c in config["clusters"] if c["name"] in in_mesh]
        stack = open_stack(f"itest-{name}", config, tmp_path_factory.mktemp(f"state-{name}"))
        result = stack.up(on_output=log, color="never")
        yield DeployedMesh(lab, stack, config, {k: v.value for k, v in result.outputs.items()})
    finally:
        try:
            if stack is not None:
                stack.destroy(exclude_protected=True, color="never", on_output=log)
                remove_stack(stack)
        finally:
            prefix = lab.network.prefix if lab.network else None
            lab.down()
            if prefix:  # the data plane's namespaces, routes and mount go with the lab
                assert not namespaces.leftovers(prefix), namespaces.leftovers(prefix)
                assert not node.pod_view(prefix).exists()


# --- requests across the mesh ----------------------------------------------------------------

# One answer of Istio's helloworld sample, whole.
HELLO = re.compile(r"^Hello version: (?P<version>v\d), instance: (?P<instance>\S+)$")


def step6(mesh: DeployedMesh, cluster: str, times: int = 10) -> list[str]:
    """The walk-through's Step 6 loop, as written there with kubectl for oc, from `cluster`'s sleep;
    its output lines."""
    script = (
        f'for i in {{0..{times - 1}}}; do kubectl --context="{cluster}" exec -n sample deploy/sleep -c sleep -- '
        "curl -sS helloworld.sample:5000/hello; done"
    )
    done = subprocess.run(
        ["bash", "-c", script],
        # HOME: kubectl keeps its discovery cache there (without one, in the working directory).
        env={
            "PATH": f"{VENV / 'bin'}:/usr/bin:/bin",
            "KUBECONFIG": str(mesh.lab.kubeconfig_path),
            "HOME": str(mesh.lab.dir),
        },  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
    )
    return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]


def sidecar_admin(mesh: DeployedMesh, cluster: str, path: str) -> str:
    """A page of the Envoy admin API (`localhost:15000/<path>`) of `cluster`'s sleep sidecar,
    asked from inside the pod."""
    api = mesh.client(cluster)
    pod = kubernetes.client.CoreV1Api(api).list_namespaced_pod("sample", label_selector="app=sleep").items[0]
    return pod_exec(
        api,
        pod.metadata.name,
        "sample",
        container="sleep",
        command=["curl", "-sS", f"localhost:15000/{path}"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )


class Traffic:
    """Steady traffic from both sides for a whole module (mesh/verify/steady.py, as `mesh verify
    --traffic-for` runs it): tests mark each operation, then read what it cost."""

    def __init__(self, mesh: DeployedMesh, rate: float = 10.0, max_seconds: float = 1200.0, fresh: bool = True):
        """`fresh`: the `new` stream asks helloworld-fresh (a new mTLS handshake per request);
        otherwise both streams ask helloworld itself (as `mesh verify` does, and as the Service
        that `mesh:failover` names)."""
        if fresh:
            lab_traffic.fresh_handshakes(mesh.client(c["name"]) for c in mesh.config["clusters"])
        self.mesh = mesh
        settings = mesh_settings.parse(mesh.config)
        apis = {c.name: mesh.client(c.name) for c in settings.clusters}
        # Answers are told apart by the pod that gave them, on every cluster of the lab (one that
        # joins the mesh later too).
        cores = {c.name: mesh.core(c.name) for c in mesh.lab.clusters}
        self.run = steady.SteadyTraffic(
            settings,
            apis,
            lambda: one_shot_traffic.helloworld_pods(cores),
            rate=rate,
            max_seconds=max_seconds,
            urls={steady.NEW: lab_traffic.FRESH_URL} if fresh else None,
        )

    def __enter__(self) -> "Traffic":
        self.run.start()
        self.run.wait_until_answered(timeout=60)
        return self

    def __exit__(self, *exc) -> None:
        self.run.stop()

    def phase(self, label: str) -> None:
        self.run.mark(label)

    def sidecar_counters(self, cluster: str, service: str, names: Iterable[str]) -> dict[str, dict[str, int]]:
        """Per endpoint of `service`, the counters `names` of the client sidecar's Envoy (its
        /clusters page) in `cluster`'s sleep."""
        return lab_traffic.endpoint_counters(sidecar_admin(self.mesh, cluster, "clusters"), service, names)

    def assert_every_fresh_request_was_a_new_handshake(self, cluster: str) -> None:
        """From the client sidecar's own counters: at every endpoint of helloworld-fresh (the local
        pod, the remote gateway) a connection opened for each request (no request on a reused one;
        a failed handshake opens one for no request)."""
        counters = self.sidecar_counters(cluster, lab_traffic.FRESH, ("cx_total", "rq_total"))
        assert counters and all(c["cx_total"] >= c["rq_total"] > 0 for c in counters.values()), counters

    def tallies(self, label: str):
        return steady.by_phase(self.run)[label]

    def table(self) -> str:
        """Per phase and source/stream: sent, failed, versions, p50/p99, the first error."""
        lines = []
        for label, tallies in steady.by_phase(self.run).items():
            for (source, stream), t in tallies.items():
                first = next(iter(t.errors), "")
                lines.append(
                    f"{label:>24} {source:>5} {stream:>4} sent {t.sent:4} failed {t.failed:3} "
                    f"versions {dict(sorted(t.versions.items()))} p50 {t.latency_ms(0.5) or 0:.1f} ms "
                    f"p99 {t.latency_ms(0.99) or 0:.1f} ms {first}"
                )
        return "\n".join(lines)

    def assert_none_failed(self, label: str) -> None:
        tallies = self.tallies(label)
        lost = {key: t.failed for key, t in tallies.items() if t.failed}
        assert not lost, f"phase {label!r} lost requests {lost}:\n{self.table()}"
        for (source, stream), t in tallies.items():
            assert t.sent > 0, f"phase {label!r}: {source}'s {stream} stream sent nothing:\n{self.table()}"

    def assert_both_versions_answer(self, label: str) -> None:
        """From each source, on the two streams together, both versions answered in that phase."""
        tallies = self.tallies(label)
        for source in {s for s, _ in tallies}:
            versions = sum((t.versions for (s, _), t in tallies.items() if s == source), Counter())
            assert set(versions) == set(HELLO_VERSIONS), f"{label}: {source} heard {dict(versions)}\n{self.table()}"


HELLO_VERSIONS = ("v1", "v2")


def ready_pods(mesh: DeployedMesh, cluster: str, namespace: str, selector: str) -> list:
    """The pods of `selector` that are Ready and not being deleted."""
    pods = mesh.core(cluster).list_namespaced_pod(namespace, label_selector=selector).items
    return [p for p in pods if not p.metadata.deletion_timestamp and pod_ready(p)]


def restart_pod(mesh: DeployedMesh, cluster: str, namespace: str, selector: str) -> None:
    """Delete the one Ready pod of `selector` and wait for its Deployment's next one to be Ready."""
    (old,) = [p.metadata.name for p in ready_pods(mesh, cluster, namespace, selector)]
    mesh.core(cluster).delete_namespaced_pod(old, namespace)
    wait_for(
        f"a new {selector} pod in {cluster}/{namespace} to be Ready",
        lambda: [p for p in ready_pods(mesh, cluster, namespace, selector) if p.metadata.name != old],
        timeout=120,
    )


def running_traffic(mesh: DeployedMesh, fresh: bool = True, warm_seconds: float = 5.0):
    """A module's steady traffic, for a module-scoped fixture (`yield from`): started, its phase
    `before` counted for `warm_seconds`, handed to the tests; then stopped, its table printed,
    and returned."""
    with Traffic(mesh, fresh=fresh) as running:
        running.phase("before")
        time.sleep(warm_seconds)
        yield running
    print(running.table())
    return running


# --- the lab's real istiods -----------------------------------------------------------------


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60, interval: float = 0.5) -> Any:
    """probe() until it returns something truthy; fail saying what was awaited and what was last seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
        except Exception as error:  # noqa: BLE001 - keep trying; report the last failure
            last = error
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"after {timeout:.0f}s still waiting for {what}; last: {last!r}")
        time.sleep(interval)


def istiod_state(mesh: DeployedMesh, cluster: str) -> dict:
    """What the cluster's node reports for its istiod pod: name, pid, ip, ports, log, ready."""
    return mesh.lab.istiods()[cluster]["istiod"]


def istiod_debug(mesh: DeployedMesh, cluster: str, path: str) -> Any:
    """GET a debug path of the cluster's istiod as istioctl does: through a port-forward to its
    monitoring port (istiod answers loopback callers without credentials)."""
    state = istiod_state(mesh, cluster)
    istiod = istiod_access.Istiod(state["name"], state["ip"], istiod_access.MONITORING_PORT)
    return istiod_access.get_json(mesh.client(cluster), istiod, path, timeout=10)


def istiod_log(mesh: DeployedMesh, cluster: str) -> str:
    return Path(istiod_state(mesh, cluster)["log"]).read_text(errors="replace")


def run_verify(
    mesh: DeployedMesh, exec_=None, progress: Callable[[str], None] = lambda line: None, **settings: Any
) -> v.Report:
    """`mesh verify` of the deployed config against the lab, as the command runs it (the real pod
    exec unless `exec_`), with `settings` (v.Settings' fields)."""
    parsed = mesh_settings.parse(json.loads(json.dumps(mesh.config)))
    apis = {c.name: v.connect(c, request_timeout=10) for c in parsed.clusters}
    try:
        return v.verify(parsed, apis, exec_ or v.PodExec(parsed, apis, 10), v.Settings(**settings), progress)
    finally:
        for api in apis.values():
            api.close()


def synced_peers(mesh: DeployedMesh, cluster: str) -> dict[str, str]:
    """The remote clusters a cluster's istiod has, and their sync status."""
    return {entry["id"]: entry["syncStatus"] for entry in istiod_debug(mesh, cluster, "/debug/clusterz")}


def service_account_token(
    mesh: DeployedMesh, cluster: str, namespace: str, name: str, audience: str = "istio-ca"
) -> str:
    """A token as the kubelet projects it into a pod for pilot-agent (audience istio-ca)."""
    request = {"spec": {"audiences": [audience], "expirationSeconds": 3600}}
    answer = mesh.core(cluster).create_namespaced_service_account_token(name, namespace, request)
    return answer.status.token


def istio_ca_root(mesh: DeployedMesh, cluster: str, namespace: str = "sample") -> str:
    """The `istio-ca-root-cert` ConfigMap istiod writes into every namespace."""
    return mesh.core(cluster).read_namespaced_config_map("istio-ca-root-cert", namespace).data["root-cert.pem"]


def cluster_name(mesh: DeployedMesh, name: str) -> str:
    return mesh.cluster_config(name)["clusterName"]


def xds_channel(mesh: DeployedMesh, cluster: str):
    """A TLS channel to the cluster's istiod (15012), checked with the cluster's istio-ca-root-cert."""
    return istio_clients.channel(istiod_state(mesh, cluster)["ports"]["secureGRPCAddr"], istio_ca_root(mesh, cluster))


def workload_certificate(mesh: DeployedMesh, cluster: str, directory: Path) -> list[str]:
    """A certificate for sample/sleep from the cluster's istiod CA, as pilot-agent asks for one:
    a CSR with a service-account token of audience istio-ca. Leaf first."""
    key, csr = directory / f"{cluster}.key", directory / f"{cluster}.csr"
    new_key_and_request(key, csr, "/O=sleep")
    token = service_account_token(mesh, cluster, "sample", "sleep")
    with xds_channel(mesh, cluster) as channel:
        return istio_clients.request_certificate(channel, token, csr.read_text(), cluster_name(mesh, cluster))


def verifies(leaf_and_chain: list[str], trusted_pem: str, directory: Path, name: str) -> subprocess.CompletedProcess:
    """openssl verify of the leaf against `trusted_pem`, the rest of the chain as untrusted."""
    leaf, untrusted, trusted = (directory / f"{name}.{suffix}" for suffix in ("leaf.pem", "chain.pem", "trust.pem"))
    leaf.write_text(leaf_and_chain[0])
    untrusted.write_text("".join(leaf_and_chain[1:]))
    trusted.write_text(trusted_pem)
    return openssl("verify", "-CAfile", str(trusted), "-untrusted", str(untrusted), str(leaf))


def plugged_in_ca(files: dict[str, str]) -> tuple[str, str]:
    """(the roots it trusts, its intermediate) of a `cacerts` in either form istiod reads:
    cert-manager's `tls.crt`/`ca.crt` (which wins when present) or Istio's four files."""
    if "tls.crt" in files:
        return files["ca.crt"], files["tls.crt"].split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----"
    return files["root-cert.pem"], files["ca-cert.pem"]


# --- cert-manager's Certificate `cacerts` --------------------------------------------------


def certificate(mesh: DeployedMesh, cluster: str) -> dict:
    """The cluster's cert-manager Certificate `cacerts`."""
    return mesh.custom(cluster).get_namespaced_custom_object(
        "cert-manager.io", "v1", "istio-system", "certificates", "cacerts"
    )


def intermediate(files: dict[str, str]) -> x509.Certificate:
    """The intermediate istiod signs with, from `cacerts` files in either form."""
    return x509.load_pem_x509_certificate(plugged_in_ca(files)[1].encode())


def renew(mesh: DeployedMesh, cluster: str) -> x509.Certificate:
    """A renewal as `cmctl renew` asks for one (the Issuing condition, ManuallyTriggered); returns
    the new intermediate once it is in `cacerts`."""
    before = intermediate(cacerts(mesh, cluster))
    current = certificate(mesh, cluster)
    current["status"]["conditions"] = [c for c in current["status"]["conditions"] if c["type"] != "Issuing"] + [
        {
            "type": "Issuing",
            "status": "True",
            "reason": "ManuallyTriggered",
            "message": "Certificate re-issuance manually triggered",
            "lastTransitionTime": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    ]
    mesh.custom(cluster).replace_namespaced_custom_object_status(
        "cert-manager.io", "v1", "istio-system", "certificates", "cacerts", current
    )
    return wait_for(
        f"cert-manager to reissue {cluster}'s intermediate",
        lambda: (now := intermediate(cacerts(mesh, cluster))).serial_number != before.serial_number and now,
        timeout=60,
    )


def assert_istiods_sign_for_the_whole_mesh(mesh: DeployedMesh, clusters: list[str], directory: Path) -> None:
    """Each real istiod issues a workload certificate that every cluster's trusted roots
    accept, and hands every namespace the trust bundle its cacerts holds."""
    bundles = {name: plugged_in_ca(cacerts(mesh, name))[0] for name in clusters}
    for name in clusters:
        wait_for(
            f"{name}'s istiod to publish its cacerts roots as istio-ca-root-cert",
            lambda: istio_ca_root(mesh, name).strip() == bundles[name].strip(),
            timeout=30,
        )
        expected = plugged_in_ca(cacerts(mesh, name))[1].strip()
        chain = wait_for(
            f"{name}'s istiod to sign with the intermediate in its cacerts",
            lambda: (c := workload_certificate(mesh, name, directory))[1].strip() == expected and c,
            timeout=30,
        )
        for peer in clusters:
            result = verifies(chain, bundles[peer], directory, f"{name}-by-{peer}")
            assert result.returncode == 0, f"{peer} does not trust {name}'s workloads: {result.stderr}"


class EndpointWatch:
    """While in effect, asks a cluster's istiod every 0.2 s how many endpoints of the sample
    helloworld it holds from `source` (a clusterName), the way `mesh verify` reads them: a
    rotation must never leave it with none (istio#61043)."""

    def __init__(self, mesh: DeployedMesh, cluster: str, source: str):
        self.mesh, self.cluster, self.source = mesh, cluster, source
        self.counts: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                shardz = istiod_debug(self.mesh, self.cluster, "/debug/endpointShardz")
                found = istiod_checks.shard_endpoints(shardz, istiod_checks.HELLOWORLD_HOST, "sample")
                self.counts.append(len(found.get(self.source, [])))
            except (OSError, istiod_access.Unreachable):
                self.counts.append(-1)  # istiod did not answer
            self._stop.wait(0.2)

    def __enter__(self) -> "EndpointWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def pytest_collection_modifyitems(items):
    """Every test here runs on a lab: mark it, so `pytest -m "not integration"` is a quick run."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker("integration")
