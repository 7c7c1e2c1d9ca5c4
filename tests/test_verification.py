"""`mesh verify` without clusters: the checks' verdicts and messages, the traffic table, the CLI.

The API-facing checks run for real against the lab in tests/integration/test_verify_lab.py;
here they get certificates, secrets and curl output made in the test.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import socket
import ssl
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes.client import V1ObjectMeta, V1Secret

from mesh import cli, config
from mesh import verify as v
from mesh.plan.pki import cacerts_data
from mesh.plan.remote_secrets import remote_kubeconfig, remote_secret_manifest

# What helloworld and curl really print (helloworld's app.py; curl; Envoy's 503 body).
HELLO_V1 = "Hello version: v1, instance: helloworld-v1-776f57d5f6-s7zfc\n"
HELLO_V2 = "Hello version: v2, instance: helloworld-v2-54df5f84b-9hxgw\n"
CURL_REFUSED = "curl: (7) Failed to connect to helloworld.sample port 5000 after 3 ms: Couldn't connect to server\n"
ENVOY_RESET = "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
NOW = datetime.now(timezone.utc)


# --- certificates, made like the program's (root, then one intermediate per cluster) -------


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def make_ca(common_name: str, issuer=None, days: int = 30, start: datetime = NOW - timedelta(hours=1)):
    """A CA certificate and key; self-signed unless `issuer` is a (certificate, key) pair."""
    key = ec.generate_private_key(ec.SECP256R1())  # fast; the checks do not care which kind
    name = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Istio"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )
    issuer_cert, issuer_key = issuer or (None, key)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )
    return certificate, key


def bundle(intermediate, root_certificate, trusted=None) -> dict[str, bytes]:
    """`cacerts` data as the program writes it, decoded as `read_cacerts` returns it; `trusted`
    are the roots in root-cert.pem when there are more than the signing one."""
    certificate, key = intermediate
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    roots = "".join(_pem(r) for r in trusted) if trusted else _pem(root_certificate)
    data = cacerts_data(_pem(certificate), key_pem, roots, _pem(root_certificate))
    return {k: text.encode() for k, text in data.items()}


def mesh_bundles(root=None, clusters=("east", "west")) -> dict[str, dict[str, bytes]]:
    root = root or make_ca("Root CA")
    return {name: bundle(make_ca("Intermediate CA", issuer=root), root[0]) for name in clusters}


@pytest.fixture(scope="module")
def root():
    return make_ca("Root CA")


def by_cluster(results):
    return {r.cluster: r for r in results}


def test_cacerts_under_one_root_pass(root):
    results = by_cluster(v.check_cacerts(mesh_bundles(root)))
    assert [r.status for r in results.values()] == [v.PASS, v.PASS]
    assert v.fingerprint(root[0]) in results["west"].detail


# Each form of `cacerts` (Istio's four files, cert-manager's tls.crt/ca.crt): how to make a
# cluster's bundle under a root, and the key that holds its trusted roots.
FORMS = {
    "four files": (lambda root, clusters: mesh_bundles(root, clusters), "root-cert.pem"),
    "tls": (lambda root, clusters: tls_bundles(root, clusters), "ca.crt"),
}


@pytest.mark.parametrize("form", FORMS)
def test_cacerts_under_another_root_name_the_cluster_and_the_root_its_peer_lacks(root, form):
    bundles_under, roots_key = FORMS[form]
    other = make_ca("Root CA")
    bundles = {**bundles_under(root, ["east"]), **bundles_under(other, ["west"])}
    results = by_cluster(v.check_cacerts(bundles))
    assert results["east"].failed and results["west"].failed
    assert (
        f"its chain ends in root {v.fingerprint(other[0])}, which east's {roots_key} does not hold: "
        "workloads on east will not trust workloads here"
    ) in results["west"].detail
    assert f"root {v.fingerprint(root[0])}, which west's {roots_key} does not hold" in results["east"].detail


def test_cacerts_against_the_stack_roots_blame_every_cluster_that_differs(root):
    other = make_ca("Root CA")
    results = v.check_cacerts(mesh_bundles(other), mesh_roots=(root[0],))
    assert all(r.failed and "not the mesh's root certificate" in r.detail for r in results)


@pytest.fixture(scope="module")
def new_root():
    return make_ca("Root CA")


def test_mid_rotation_clusters_signed_by_different_roots_pass_while_both_trust_both(root, new_root):
    both = (root[0], new_root[0])
    bundles = {
        "east": bundle(make_ca("Intermediate CA", issuer=root), root[0], both),
        "west": bundle(make_ca("Intermediate CA", issuer=new_root), new_root[0], both),
    }
    results = by_cluster(v.check_cacerts(bundles, mesh_roots=both))
    assert [r.status for r in results.values()] == [v.PASS, v.PASS], [r.detail for r in results.values()]
    assert results["west"].detail == (
        f"valid chain under root {v.fingerprint(new_root[0])}; also trusts {v.fingerprint(root[0])}"
    )


def test_retiring_the_old_root_while_a_cluster_still_signs_with_it_is_caught(root, new_root):
    bundles = {
        "east": bundle(make_ca("Intermediate CA", issuer=new_root), new_root[0]),
        "west": bundle(make_ca("Intermediate CA", issuer=root), root[0], (root[0], new_root[0])),
    }
    results = by_cluster(v.check_cacerts(bundles))
    assert results["east"].status == v.PASS
    assert results["west"].failed
    assert f"root {v.fingerprint(root[0])}, which east's root-cert.pem does not hold" in results["west"].detail


def test_intermediate_signed_by_a_foreign_root_under_the_mesh_root_fails(root):
    foreign = make_ca("Root CA")
    data = bundle(make_ca("Intermediate CA", issuer=foreign), root[0])
    (result,) = v.check_cacerts({"west": data})
    assert result.failed
    assert "ca-cert.pem (CN=Intermediate CA,O=Istio) is not signed by root-cert.pem" in result.detail


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: d.pop("ca-key.pem"), "missing ca-key.pem: istiod fails on a partial bundle"),
        (
            lambda d: d.update({"cert-chain.pem": d["root-cert.pem"] + d["ca-cert.pem"]}),
            "cert-chain.pem is not ca-cert.pem followed by the root in root-cert.pem that signed it",
        ),
        (lambda d: d.update({"root-cert.pem": b"not a certificate"}), "unreadable PEM data"),
    ],
)
def test_broken_bundles_say_what_is_wrong(root, damage, message):
    data = mesh_bundles(root, ["east"])["east"]
    damage(data)
    (result,) = v.check_cacerts({"east": data})
    assert result.failed and message in result.detail, result.detail


def test_a_key_of_another_certificate_is_caught(root):
    data = mesh_bundles(root, ["east"])["east"]
    data["ca-key.pem"] = bundle(make_ca("Intermediate CA", issuer=root), root[0])["ca-key.pem"]
    (result,) = v.check_cacerts({"east": data})
    assert result.failed and "ca-key.pem is not the key of ca-cert.pem" in result.detail


def test_expired_intermediate_is_caught(root):
    old = make_ca("Intermediate CA", issuer=root, days=1, start=NOW - timedelta(days=3))
    (result,) = v.check_cacerts({"east": bundle(old, root[0])})
    assert result.failed and "ca-cert.pem is outside its validity" in result.detail


def test_missing_cacerts_secret_fails():
    (result,) = v.check_cacerts({"east": None})
    assert result.failed and result.detail.startswith("not found")


# --- cacerts in the kubernetes.io/tls form cert-manager writes (issue 13) -------------------


def tls_bundle(intermediate, ca_crt, chain=()) -> dict[str, bytes]:
    """`cacerts` as cert-manager writes it: `tls.crt` the intermediate, then whatever chain the
    issuer returned; `tls.key` its key; `ca.crt` the issuer's top certificate(s)."""
    certificate, key = intermediate
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "tls.crt": "".join(_pem(c) for c in (certificate, *chain)).encode(),
        "tls.key": key_pem,
        "ca.crt": "".join(_pem(c) for c in ca_crt).encode(),
    }


def tls_bundles(root, clusters=("east", "west")) -> dict[str, dict[str, bytes]]:
    return {name: tls_bundle(make_ca("Intermediate CA", issuer=root), [root[0]]) for name in clusters}


def test_a_tls_form_bundle_passes_and_is_named(root):
    results = by_cluster(v.check_cacerts(tls_bundles(root), mesh_roots=(root[0],)))
    assert [r.status for r in results.values()] == [v.PASS, v.PASS], [r.detail for r in results.values()]
    assert results["east"].detail == f"valid chain under root {v.fingerprint(root[0])} (tls.crt/ca.crt form)"


def test_a_tls_chain_through_an_issuing_ca_to_the_root_in_ca_crt_passes(root):
    # A Vault issuer whose mount chains up to the root: tls.crt is the cluster's intermediate, then
    # the Vault CA that signed it, with or without the root after it; ca.crt is the root.
    vault = make_ca("Vault CA", issuer=root)
    intermediate = make_ca("Intermediate CA", issuer=vault)
    for chain in ([vault[0]], [vault[0], root[0]]):
        (result,) = v.check_cacerts({"east": tls_bundle(intermediate, [root[0]], chain)})
        assert result.status == v.PASS, result.detail
        assert v.fingerprint(root[0]) in result.detail


def test_a_tls_chain_that_does_not_reach_ca_crt_fails(root):
    vault = make_ca("Vault CA", issuer=root)
    stranger = make_ca("Vault CA", issuer=root)
    (broken,) = v.check_cacerts(
        {"east": tls_bundle(make_ca("Intermediate CA", issuer=vault), [root[0]], [stranger[0]])}
    )
    assert broken.failed
    assert (
        "tls.crt's chain is broken: CN=Intermediate CA,O=Istio is not signed by the next certificate" in broken.detail
    )
    (direct,) = v.check_cacerts({"east": tls_bundle(make_ca("Intermediate CA", issuer=vault), [root[0]])})
    assert direct.failed
    assert "tls.crt (CN=Intermediate CA,O=Istio) is not signed by ca.crt" in direct.detail


def test_tls_form_against_the_stack_roots_names_ca_crt(root):
    other = make_ca("Root CA")
    results = v.check_cacerts(tls_bundles(other), mesh_roots=(root[0],))
    assert all(r.failed and "its ca.crt holds" in r.detail and "not the mesh's root" in r.detail for r in results)


def test_ca_crt_that_is_an_intermediate_says_the_issuers_chain_lacks_the_root(root):
    # A Vault mount whose chain lacks the root: cert-manager puts the Vault CA in ca.crt. The
    # chain verifies up to it, and both clusters hold the same one, so only this check catches it.
    vault = make_ca("Vault CA", issuer=root)
    bundles = {name: tls_bundle(make_ca("Intermediate CA", issuer=vault), [vault[0]]) for name in ("east", "west")}
    for result in v.check_cacerts(bundles):
        assert result.failed
        assert result.detail == (
            "ca.crt is CN=Vault CA,O=Istio, not a self-signed root: the issuer's chain lacks the root "
            "(for Vault, set the PKI mount's chain to include the root)"
        )


def test_a_tls_bundle_without_tls_key_fails_naming_it(root):
    data = tls_bundles(root, ["east"])["east"]
    del data["tls.key"]
    (result,) = v.check_cacerts({"east": data})
    assert result.failed
    assert result.detail.startswith("missing tls.key: istiod fails on a partial bundle"), result.detail


def test_a_tls_key_of_another_certificate_is_caught(root):
    data = tls_bundles(root, ["east"])["east"]
    data["tls.key"] = tls_bundles(root, ["west"])["west"]["tls.key"]
    (result,) = v.check_cacerts({"east": data})
    assert result.failed and result.detail == "tls.key is not the key of tls.crt"


def test_an_expired_tls_intermediate_is_caught(root):
    old = make_ca("Intermediate CA", issuer=root, days=1, start=NOW - timedelta(days=3))
    (result,) = v.check_cacerts({"east": tls_bundle(old, [root[0]])})
    assert result.failed and "tls.crt is outside its validity" in result.detail


def test_with_both_forms_the_tls_form_is_checked(root):
    # istiod reads tls.crt, tls.key and ca.crt whenever tls.crt is there: a broken tls form fails
    # however good the four files are, and broken four files pass beside a good tls form.
    four_files = mesh_bundles(root, ["east"])["east"]
    broken_tls = tls_bundles(root, ["east"])["east"]
    broken_tls["tls.key"] = four_files["ca-key.pem"]
    (result,) = v.check_cacerts({"east": {**four_files, **broken_tls}})
    assert result.failed and result.detail == "tls.key is not the key of tls.crt"

    other = make_ca("Root CA")
    stale = {**mesh_bundles(other, ["east"])["east"], "ca-key.pem": b"not a key"}
    (result,) = v.check_cacerts({"east": {**stale, **tls_bundles(root, ["east"])["east"]}}, mesh_roots=(root[0],))
    assert result.status == v.PASS, result.detail
    assert result.detail == (
        f"valid chain under root {v.fingerprint(root[0])} (tls.crt/ca.crt form); ca-cert.pem, ca-key.pem, "
        "root-cert.pem, cert-chain.pem also there, with another intermediate or roots: istiod ignores them while "
        "tls.crt is there, but would read them without it: remove them"
    )


def test_four_files_beside_the_tls_form_that_agree_with_it_are_noted(root):
    intermediate = make_ca("Intermediate CA", issuer=root)
    data = {**bundle(intermediate, root[0]), **tls_bundle(intermediate, [root[0]])}
    (result,) = v.check_cacerts({"east": data})
    assert result.status == v.PASS
    assert result.detail.endswith("also there, with the same intermediate and roots: istiod ignores them")


# --- remote secrets (the content; access runs against the lab) -------------------------------


@pytest.fixture
def mesh(east_west) -> config.MeshConfig:
    return config.parse(east_west)


def remote_secret(cluster: config.ClusterConfig, name=None, key=None, server=None) -> V1Secret:
    """The secret the program writes for `cluster`, optionally naming another cluster."""
    manifest = remote_secret_manifest(cluster.cluster_name)
    if name:
        manifest["metadata"]["annotations"] = {"networking.istio.io/cluster": name}
    kubeconfig = remote_kubeconfig(cluster.cluster_name, server or cluster.api_server_url, "Q0E=", "token")
    data = {key or cluster.cluster_name: base64.b64encode(kubeconfig.encode()).decode()}
    return V1Secret(metadata=V1ObjectMeta(**manifest["metadata"]), data=data)


def test_the_programs_remote_secret_has_no_problems(mesh):
    west = mesh.clusters[1]
    problems, kubeconfig = v.remote_secret_problems(remote_secret(west), west)
    assert problems == []
    assert kubeconfig["current-context"] == "cluster2"


def test_a_different_cluster_annotation_is_noted_not_failed(mesh):
    # The lab's real istiod kept cluster2 synced with this annotation: it reads the data key.
    west = mesh.clusters[1]
    secret = remote_secret(west, name="cluster-2")
    problems, _ = v.remote_secret_problems(secret, west)
    assert problems == []
    assert v.annotation_note(secret, west) == (
        "its annotation networking.istio.io/cluster says cluster-2, not cluster2: istiod ignores it, but "
        "istioctl-made secrets carry the data key's name there"
    )
    assert v.annotation_note(remote_secret(west), west) is None


def test_a_wrong_data_key_and_server_are_named(mesh):
    west = mesh.clusters[1]
    problems, kubeconfig = v.remote_secret_problems(remote_secret(west, key="cluster-2"), west)
    assert kubeconfig is None
    assert problems == ["no data key 'cluster2' (keys: cluster-2): istiod finds no kubeconfig for cluster2"]
    problems, _ = v.remote_secret_problems(remote_secret(west, server="https://127.0.0.1:6443"), west)
    assert problems == [f"its server is https://127.0.0.1:6443, not west's apiServerUrl {west.api_server_url}"]


def test_a_secret_without_the_multicluster_label_is_ignored_by_istiod(mesh):
    west = mesh.clusters[1]
    secret = remote_secret(west)
    secret.metadata.labels = {}
    problems, _ = v.remote_secret_problems(secret, west)
    assert problems == ['label istio/multiCluster is not "true": istiod ignores this secret']


class SecretsOf:
    """Stands in for a holder's CoreV1Api: reads the one secret it holds."""

    def __init__(self, secret):
        self.secret = secret

    def read_namespaced_secret(self, name, namespace):
        assert (name, namespace) == (self.secret.metadata.name, "istio-system")
        return self.secret


def test_a_remote_server_this_machine_cannot_reach_is_a_note_not_a_failure(east_west):
    """API servers are often private endpoints that only the other clusters reach: the probe from
    here says so and passes; istiod's own report (the istiod peers check) decides."""
    east_west["clusters"][1]["apiServerUrl"] = "https://127.0.0.1:1"  # a closed port: nothing answers here
    mesh = config.parse(east_west)
    east, west = mesh.clusters
    result = v.check_remote_secret(SecretsOf(remote_secret(west)), east, west, request_timeout=2)
    assert result.status == v.PASS, result.detail
    assert result.detail.startswith(
        "well formed for west; its server https://127.0.0.1:1 does not answer from here (cannot reach the API server"
    ), result.detail
    assert result.detail.endswith("as a private endpoint would not: east's istiod peers check below says whether "
                                  "istiod reaches it")  # fmt: skip


def test_a_remote_server_that_answers_with_another_ca_fails_naming_it(east_west, tmp_path):
    """A server that answers, with a certificate the secret's CA did not sign (a stale
    certificate-authority-data): not a private endpoint, a wrong secret."""
    server_cert, server_key = make_ca("the real API server")
    (tmp_path / "cert.pem").write_text(_pem(server_cert))
    (tmp_path / "key.pem").write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():  # complete (or fail) each handshake, answer nothing
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            try:
                context.wrap_socket(connection, server_side=True).close()
            except (OSError, ssl.SSLError):
                connection.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        east_west["clusters"][1]["apiServerUrl"] = f"https://127.0.0.1:{port}"
        mesh = config.parse(east_west)
        east, west = mesh.clusters
        stale_ca = base64.b64encode(_pem(make_ca("an old CA")[0]).encode()).decode()
        secret = remote_secret(west)
        kubeconfig = remote_kubeconfig(west.cluster_name, west.api_server_url, stale_ca, "token")
        secret.data = {west.cluster_name: base64.b64encode(kubeconfig.encode()).decode()}
        result = v.check_remote_secret(SecretsOf(secret), east, west, request_timeout=3)
    finally:
        listener.close()
    assert result.failed, result
    assert result.detail.startswith(f"https://127.0.0.1:{port} answers, but not to this kubeconfig ("), result.detail
    assert "its certificate-authority-data or server is not west's" in result.detail, result.detail


# --- control plane (a stand-in for the custom-objects API) ---------------------------------


class FakeCustomObjects:
    def __init__(self, objects):
        self.objects = objects

    def get_cluster_custom_object(self, group, version, plural, name):
        return copy.deepcopy(self.objects[plural])


def sail(kind, ready="True", message="", generation=1, observed=1):
    return {
        "kind": kind,
        "metadata": {"name": "default", "generation": generation},
        "status": {
            "observedGeneration": observed,
            "state": "Healthy" if ready == "True" else "ReconcileError",
            "conditions": [
                {"type": "Ready", "status": ready, "reason": "ReconcileError" if message else "", "message": message}
            ],
            "activeRevisionName": "default",
        },
    }


def test_control_plane_reports_the_operators_message(mesh):
    message = 'failed to install/update Helm chart "istiod": context deadline exceeded'
    custom = FakeCustomObjects({"istios": sail("Istio", "False", message), "istiocnis": sail("IstioCNI")})
    istio, cni = v.check_control_plane(custom, mesh, mesh.clusters[0])
    assert istio.failed and istio.item == "Istio default"
    assert istio.detail == f"not Ready (state ReconcileError): ReconcileError: {message}"
    assert cni.status == v.PASS and cni.item == "IstioCNI default"


def test_a_ready_istio_whose_spec_the_operator_refused_fails_with_its_reason(mesh):
    # An end-of-life version asked of a running Istio: the old istiod stays Ready, the change is refused.
    istio = sail("Istio")
    refused = 'version "v1.28.10" is end-of-life and cannot be installed'
    istio["status"]["state"] = "ReconcileError"
    istio["status"]["conditions"].append(
        {"type": "Reconciled", "status": "False", "reason": "ReconcileError", "message": refused}
    )
    custom = FakeCustomObjects({"istios": istio, "istiocnis": sail("IstioCNI")})
    result, cni = v.check_control_plane(custom, mesh, mesh.clusters[0])
    assert result.failed
    assert result.detail == (
        f"Ready, but the operator could not apply its spec (state ReconcileError): ReconcileError: {refused}"
    )
    assert cni.status == v.PASS


def test_a_stale_ready_condition_does_not_pass(mesh):
    custom = FakeCustomObjects({"istios": sail("Istio", generation=2, observed=1), "istiocnis": sail("IstioCNI")})
    istio, _ = v.check_control_plane(custom, mesh, mesh.clusters[0])
    assert istio.failed and "has not reconciled generation 2 yet" in istio.detail


def test_istiod_deployment_follows_the_revision_name():
    assert v.istiod_deployment_name("default") == "istiod"
    assert v.istiod_deployment_name("default-v1-30-3") == "istiod-default-v1-30-3"


# --- traffic ------------------------------------------------------------------------------

# Which cluster runs the pods the answers above name (the verify reads them from each cluster).
PODS = {"helloworld-v1-776f57d5f6-s7zfc": "east", "helloworld-v2-54df5f84b-9hxgw": "west"}


def timed(answer: str, code: str = "200", seconds: str = "0.004") -> str:
    """What curl_command prints: the body, then curl's status code and total seconds."""
    return f"{answer}\n{code} {seconds}\n"


class ScriptedExec:
    """Stands in for the pod exec API: each cluster's sleep prints the given outputs in turn."""

    def __init__(self, outputs: dict[str, list]):
        self.outputs = {name: itertools.cycle(lines) for name, lines in outputs.items()}
        self.calls = {name: 0 for name in outputs}

    def __call__(self, cluster: str) -> str:
        self.calls[cluster] += 1
        output = next(self.outputs[cluster])
        if isinstance(output, Exception):
            raise output
        return output


class Pods:
    """Stands in for listing helloworld pods in every cluster; counts the reads."""

    def __init__(self, pods=PODS):
        self.pods, self.reads = dict(pods), 0

    def __call__(self):
        self.reads += 1
        return self.pods


def traffic(mesh, outputs, requests=10, tolerate=0, pods=None):
    exec_ = ScriptedExec(outputs)
    rows = v.measure_traffic(mesh, exec_, pods or Pods(), requests, lambda line: None)
    results = [r for row in rows for r in v.traffic_results(row, tolerate)]
    report = v.Report(results, rows, requests, v.expected_versions(mesh))
    return report, {(r.cluster, r.item): r for r in results}, exec_


@pytest.mark.parametrize(
    "output, reply",
    [
        (timed(HELLO_V1, seconds="0.012500"), v.Reply("v1", "helloworld-v1-776f57d5f6-s7zfc", 0.0125)),
        (HELLO_V2, v.Reply("v2", "helloworld-v2-54df5f84b-9hxgw")),
        # A failure keeps curl's time too: how long the request was held before it failed.
        (timed(CURL_REFUSED, "000"), v.Reply(error=CURL_REFUSED.strip(), seconds=0.004)),
        (timed(ENVOY_RESET, "503"), v.Reply(error=f"HTTP 503: {ENVOY_RESET}", seconds=0.004)),
        (timed("no healthy upstream", "503"), v.Reply(error="HTTP 503: no healthy upstream", seconds=0.004)),
        # helloworld's words with another status are not an answer.
        (timed(HELLO_V1, "500"), v.Reply(error=f"HTTP 500: {HELLO_V1.strip()}", seconds=0.004)),
        ("", v.Reply(error="empty response")),
    ],
)
def test_responses_are_read_as_an_answer_with_its_pod_and_time_or_an_error(output, reply):
    assert v.parse_response(output) == reply


def test_percentiles_are_nearest_rank():
    values = [float(n) for n in range(100, 0, -1)]
    assert (v.percentile(values, 0.5), v.percentile(values, 0.99), v.percentile([7.0], 0.99)) == (50.0, 99.0, 7.0)


def test_every_source_answered_by_every_cluster_passes_with_each_pairs_latency(mesh):
    east = [timed(HELLO_V1, seconds="0.002"), timed(HELLO_V2, seconds="0.010")]
    west = [timed(HELLO_V2, seconds="0.003"), timed(HELLO_V1, seconds="0.012")]
    report, results, exec_ = traffic(mesh, {"east": east, "west": west})
    assert exec_.calls == {"east": 10, "west": 10}
    assert {key: (r.status, r.detail) for key, r in results.items()} == {
        ("east", "sleep -> helloworld of east"): (v.PASS, "v1 x5; p50 2.0 ms, p99 2.0 ms"),
        ("east", "sleep -> helloworld of west"): (v.PASS, "v2 x5; p50 10 ms, p99 10 ms"),
        ("east", "sleep -> helloworld"): (v.PASS, "10 requests, 0 failed"),
        ("west", "sleep -> helloworld of east"): (v.PASS, "v1 x5; p50 12 ms, p99 12 ms"),
        ("west", "sleep -> helloworld of west"): (v.PASS, "v2 x5; p50 3.0 ms, p99 3.0 ms"),
        ("west", "sleep -> helloworld"): (v.PASS, "10 requests, 0 failed"),
    }
    assert report.ok
    assert cli.traffic_table(report, report.results).splitlines() == [
        "  FROM  TO        ANSWERS  VERSIONS  P50 ms  P99 ms  RESULT  DETAIL",
        "  east  east            5  v1 x5        2.0     2.0  ok",
        "  east  west            5  v2 x5       10.0    10.0  ok",
        "  east  (failed)        0  -              -       -  ok      10 requests, 0 failed",
        "  west  east            5  v1 x5       12.0    12.0  ok",
        "  west  west            5  v2 x5        3.0     3.0  ok",
        "  west  (failed)        0  -              -       -  ok      10 requests, 0 failed",
    ]
    assert report.to_dict()["traffic"]["sources"]["east"]["answeredBy"]["west"] == {
        "answers": 5, "versions": {"v2": 5}, "p50Ms": 10.0, "p99Ms": 10.0
    }  # fmt: skip


def test_a_source_never_answered_by_another_cluster_fails_that_pair_after_trying_harder(mesh):
    report, results, exec_ = traffic(mesh, {"east": [HELLO_V1, HELLO_V2], "west": [HELLO_V2]})
    assert exec_.calls == {"east": 10, "west": 40}  # up to 4x --requests while east is unseen
    assert results[("west", "sleep -> helloworld of east")].failed
    assert results[("west", "sleep -> helloworld of east")].detail == (
        "no answer in 40 requests: traffic from west does not reach east: look at the gateway, "
        "remote-secret and cacerts checks above"
    )
    assert results[("west", "sleep -> helloworld of west")].status == v.PASS
    assert not report.ok
    assert report.to_dict()["traffic"]["sources"]["west"]["missing"] == ["east"]


def test_a_version_running_in_two_clusters_is_told_apart_by_the_answering_pod(three_clusters):
    mesh = config.parse(three_clusters)  # east v1, west v2, south v1 (the defaults)
    south = "Hello version: v1, instance: helloworld-v1-6d5f7b9c8d-q2x4z\n"
    pods = Pods({**PODS, "helloworld-v1-6d5f7b9c8d-q2x4z": "south"})
    # East's v1 answers only from its own pod: south is never reached, though v1 answered.
    everyone = [HELLO_V1, HELLO_V2, south]
    _, results, _ = traffic(mesh, {"east": [HELLO_V1, HELLO_V2], "west": everyone, "south": everyone}, pods=pods)
    assert results[("east", "sleep -> helloworld of south")].failed
    assert results[("east", "sleep -> helloworld of east")].detail.startswith("v1 x20;")
    assert not [r for key, r in results.items() if r.failed and key[0] != "east"]


def test_failed_requests_fail_the_source_naming_how_many_and_the_first(mesh):
    east = [HELLO_V1, HELLO_V2, HELLO_V1, timed(CURL_REFUSED, "000")]
    report, results, _ = traffic(mesh, {"east": east, "west": [HELLO_V2, HELLO_V1]}, requests=8)
    # Both clusters answered east: its pairs pass, and its failed requests fail it.
    assert results[("east", "sleep -> helloworld of west")].status == v.PASS
    assert results[("east", "sleep -> helloworld")].failed
    assert results[("east", "sleep -> helloworld")].detail == f"8 requests, 2 failed, first {CURL_REFUSED.strip()!r}"
    assert not report.ok
    # --tolerate 2 lets them pass, and still says they happened.
    _, results, _ = traffic(mesh, {"east": east, "west": [HELLO_V2, HELLO_V1]}, requests=8, tolerate=2)
    assert results[("east", "sleep -> helloworld")].status == v.PASS
    assert results[("east", "sleep -> helloworld")].detail == (
        f"8 requests, 2 failed, first {CURL_REFUSED.strip()!r} (tolerated: --tolerate 2)"
    )


def test_an_answer_from_a_pod_no_cluster_has_reads_the_pods_again_then_fails_naming_it(mesh):
    stranger = "Hello version: v1, instance: helloworld-v1-gone\n"
    pods = Pods()
    report, results, _ = traffic(
        mesh, {"east": [HELLO_V1, HELLO_V2, stranger], "west": [HELLO_V2, HELLO_V1]}, pods=pods
    )
    assert pods.reads == 1 + 3  # the first read, then once for each answer of the unknown pod
    stray = results[("east", f"sleep -> helloworld of {v.UNKNOWN}")]
    assert stray.failed and stray.detail == (
        "3 answers from pods no cluster of the mesh runs (helloworld-v1-gone): a stale endpoint, "
        "or a cluster outside this stack"
    )
    assert report.to_dict()["traffic"]["sources"]["east"]["answeredBy"][v.UNKNOWN]["answers"] == 3


def test_a_pod_read_once_stays_known_when_a_later_read_no_longer_lists_it(mesh):
    """A rollout: the answering pod is deleted (its endpoint still draining) while a new one is
    made; an answer from the new pod re-reads the pods, and the old one's answers still count for
    its cluster."""
    new_pod = "Hello version: v1, instance: helloworld-v1-new\n"
    pods = Pods()

    def rollout():
        pods.reads += 1
        return {"helloworld-v1-new": "east", "helloworld-v2-54df5f84b-9hxgw": "west"} if pods.reads > 1 else PODS

    _, results, _ = traffic(mesh, {"east": [HELLO_V1, new_pod, HELLO_V1, HELLO_V2], "west": [HELLO_V2, HELLO_V1]}, pods=rollout)  # fmt: skip
    assert results[("east", "sleep -> helloworld of east")].detail.startswith("v1 x"), results
    assert ("east", f"sleep -> helloworld of {v.UNKNOWN}") not in results


def test_an_exec_that_fails_mid_run_counts_as_a_failed_request_and_three_in_a_row_stop(mesh):
    lost = v.ExecError("exec into sample/sleep failed: connection reset")
    _, results, exec_ = traffic(mesh, {"east": [HELLO_V1, HELLO_V2, lost], "west": [HELLO_V2, HELLO_V1]}, requests=9)
    assert exec_.calls["east"] == 9
    assert results[("east", "sleep -> helloworld")].detail == f"9 requests, 3 failed, first {str(lost)!r}"
    assert results[("east", "sleep -> helloworld of west")].status == v.PASS
    _, results, exec_ = traffic(mesh, {"east": [HELLO_V1, lost, lost, lost], "west": [HELLO_V2, HELLO_V1]})
    assert exec_.calls["east"] == 4
    assert results[("east", "sleep -> helloworld")].detail == (
        f"3 requests, 2 failed, first {str(lost)!r}; then stopped: {lost}"
    )


def test_curls_message_after_the_timing_line_is_kept():
    # stdout's trailer first, then stderr's message: the exec stream joins them as they arrive.
    assert v.parse_response("\n000 0.003\n" + CURL_REFUSED) == v.Reply(error=CURL_REFUSED.strip(), seconds=0.003)


def test_sending_more_stops_at_the_deadline(mesh):
    """--timeout bounds the extra requests a source sends while a cluster has not answered it."""
    exec_ = ScriptedExec({"east": [HELLO_V1], "west": [HELLO_V2, HELLO_V1]})
    rows = v.measure_traffic(mesh, exec_, Pods(), 10, lambda line: None, deadline=time.monotonic() - 1)
    assert exec_.calls["east"] == 10 and rows[0].missing == ("west",)


def test_a_sleep_that_cannot_be_reached_stops_at_the_first_try(mesh):
    failure = v.ExecError("no Ready pod of Deployment sleep in namespace sample")
    _, results, exec_ = traffic(mesh, {"east": [failure], "west": [HELLO_V1, HELLO_V2]})
    assert exec_.calls["east"] == 1
    assert results[("east", "sleep -> helloworld")].failed
    assert results[("east", "sleep -> helloworld")].detail == str(failure)


def test_curl_is_the_articles_with_a_deadline_and_its_own_timing():
    assert v.curl_command(14) == [
        "curl", "-sS", "--max-time", "14", "-w", r"\n%{http_code} %{time_total} %{num_connects}\n",
        "helloworld.sample:5000/hello",
    ]  # fmt: skip


# --- the report and the command -------------------------------------------------------------


def test_render_has_a_table_per_check_and_a_summary_line(mesh):
    report, _, _ = traffic(mesh, {"east": [HELLO_V1, HELLO_V2], "west": [HELLO_V2]})
    report.results = [
        v.Result(v.GATEWAY, "east", "Service istio-eastwestgateway", v.PASS, "address 203.0.113.7"),
        v.Result(v.GATEWAY, "west", "Service istio-eastwestgateway", v.FAIL, "has no address"),
        *report.results,
    ]
    text = cli.render(report)
    assert text.startswith(
        "east-west gateway\n"
        "  CLUSTER  ITEM                           RESULT  DETAIL\n"
        "  east     Service istio-eastwestgateway  ok      address 203.0.113.7\n"
        "  west     Service istio-eastwestgateway  FAIL    has no address\n\n"
        "traffic: 10 requests or more from each cluster's sleep to helloworld.sample:5000/hello (deployed: v1 on east, "
        "v2 on west), each answer's cluster read from the pod that gave it\n"
    )
    assert text.endswith("\n\nthe mesh is NOT working: 6 passed, 2 failed, 0 skipped")


def test_stack_file_keys_are_read_like_the_program_reads_them(east_west):
    document = {"encryptionsalt": "v1:abc", "config": {f"mesh:{k}": val for k, val in east_west.items()}}
    document["config"]["kubernetes:context"] = "ignored"
    assert cli.mesh_keys(document, "Pulumi.x.yaml") == east_west


def test_pulumi_config_json_output_is_accepted(east_west):
    document = {
        f"mesh:{k}": {"value": json.dumps(val), "objectValue": val, "secret": False}
        if isinstance(val, (list, dict))
        else {"value": str(val), "secret": False}
        for k, val in east_west.items()
    }
    mesh = config.parse(cli.mesh_keys(document, "mesh.json"))
    assert [c.name for c in mesh.clusters] == ["east", "west"]
    assert mesh.sample_apps is True


@pytest.mark.parametrize(
    "value",
    [{"secure": "v1:Zm9v"}, [{"name": "east", "kubeconfig": {"secure": "v1:Zm9v"}}], {"secret": True}],
)
def test_encrypted_values_say_how_to_decrypt_them(value):
    with pytest.raises(cli.UsageError, match=r"mesh:clusters is encrypted.*--show-secrets"):
        cli.mesh_keys({"config": {"mesh:clusters": value}}, "Pulumi.x.yaml")


def write_stack_file(tmp_path, raw, name="Pulumi.test.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"config": {f"mesh:{k}": val for k, val in raw.items()}}))
    return path


def test_config_errors_are_the_programs_and_exit_2(tmp_path, east_west, capsys):
    east_west["clusters"][1]["clusterName"] = "Cluster_2"
    assert cli.main(["verify", "--config", str(write_stack_file(tmp_path, east_west))]) == 2
    assert capsys.readouterr().err.startswith(
        "mesh verify: config mesh:clusters[1].clusterName: 'Cluster_2' is not accepted"
    )


def test_a_missing_stack_file_says_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["verify", "--stack", "nowhere"]) == 2
    assert f"{tmp_path}/Pulumi.nowhere.yaml: no such file" in capsys.readouterr().err


def test_unreachable_clusters_fail_fast_and_in_json(tmp_path, east_west, monkeypatch, capsys):
    # conftest's kubeconfig points at https://<context>.invalid:6443, which never resolves.
    monkeypatch.chdir(tmp_path)
    write_stack_file(tmp_path, east_west, "Pulumi.east-west.yaml")
    assert cli.main(["verify", "--stack", "east-west", "--json", "--timeout", "1", "--request-timeout", "2"]) == 1
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["ok"] is False
    servers = [r for r in report["results"] if r["check"] == v.API_SERVERS]
    assert [(r["cluster"], r["status"]) for r in servers] == [("east", "fail"), ("west", "fail")]
    assert servers[0]["detail"].startswith("unreachable: cannot reach the API server")
    assert "mesh verify: connecting to east, west" in err


def test_bad_numbers_are_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["verify", "--stack", "x", "--requests", "0"])
    assert exit_.value.code == 2
    assert "argument --requests: expected a whole number above 0, not '0'" in capsys.readouterr().err


def test_a_root_cert_that_is_not_pem_exits_2(tmp_path, east_west, capsys):
    (tmp_path / "root.pem").write_text("-----BEGIN CERTIFICATE-----\nnope\n")
    config_file = str(write_stack_file(tmp_path, east_west))
    assert cli.main(["verify", "--config", config_file, "--root-cert", str(tmp_path / "root.pem")]) == 2
    assert "mesh verify: --root-cert " in capsys.readouterr().err


class _Authorization:
    """Answers SelfSubjectAccessReviews as an API server would for a role without `denied`."""

    def __init__(self, denied: str):
        self.denied, self.asked = denied, []

    def create_self_subject_access_review(self, body):
        attributes = body["spec"]["resourceAttributes"]
        self.asked.append((attributes["verb"], attributes["resource"]))
        status = type("Status", (), {"allowed": attributes["resource"] != self.denied})
        return type("Review", (), {"status": status})


def test_a_reader_without_one_rule_is_named_by_verb_and_resource():
    authorization = _Authorization("endpointslices")
    assert v.missing_reader_rights(authorization) == [
        "list endpointslices.discovery.k8s.io",
        "watch endpointslices.discovery.k8s.io",
    ]
    assert ("watch", "pods") in authorization.asked and ("create", "tokenreviews") in authorization.asked
    assert v.missing_reader_rights(_Authorization("nothing")) == []
