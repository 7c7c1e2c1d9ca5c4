"""cert-manager's real controller on a lab cluster: a CA Issuer from a root made here issues an
intermediate CA into `cacerts` (the form istiod reads: `tls.crt`, `tls.key`, `ca.crt`) and
renews it by itself; and the controller says so, detectably, where its CRDs are missing.

The controller is the one the lab runs per cluster (toolchain/cert-manager.sh builds it from
the github.com/cert-manager/cert-manager module). One cluster, no stand-ins: nothing else acts
on the cluster, so a renewed Secret can only be cert-manager's doing.
"""

from __future__ import annotations

import base64
import datetime
import json
import time
import urllib.error
import urllib.request

import kubernetes
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lab import procs
from lab.clusters.controlplane import CERT_MANAGER_CONTROLLER, CERT_MANAGER_NAMESPACE
from lab.lab import Lab
from lab.toolchain import cert_manager_binaries, versions

from .conftest import lab_status, wait_for

CLUSTER = "east"
NS = CERT_MANAGER_NAMESPACE
GROUP, VERSION = "cert-manager.io", "v1"
# Renewal is due `renewBefore` ahead of expiry: 15 s after each issuance here, so the test sees
# the controller renew on its own within seconds. (Valid in a real cluster too: cert-manager's
# webhook wants duration >= 1h and renewBefore < duration.)
DURATION, RENEW_BEFORE, RENEWS_AFTER = "1h", "59m45s", 15


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("lab-cert-manager"), clusters=[CLUSTER], standin=False)
    lab.up()
    try:
        yield lab
    finally:
        lab.down()


def api(lab: Lab) -> kubernetes.client.ApiClient:
    return kubernetes.config.new_client_from_config(str(lab.kubeconfig_path), context=CLUSTER)


def make_root() -> tuple[str, str]:
    """A self-signed root CA (P-256, so it is quick), as a mesh's root: PEM cert and key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mesh lab"), x509.NameAttribute(NameOID.COMMON_NAME, "root")])  # fmt: skip
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def secret_data(core: kubernetes.client.CoreV1Api, name: str) -> tuple[kubernetes.client.V1Secret, dict[str, bytes]]:
    secret = core.read_namespaced_secret(name, NS)
    return secret, {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}


def ready(custom: kubernetes.client.CustomObjectsApi, plural: str, name: str) -> bool:
    obj = custom.get_namespaced_custom_object(GROUP, VERSION, NS, plural, name)
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


@pytest.fixture(scope="module")
def cacerts(lab):
    """The root as a Secret, a CA Issuer of it, and a Certificate `cacerts` (isCA) from that
    Issuer, all in istio-system; waits for the Certificate to be Ready."""
    client = api(lab)
    core, custom = kubernetes.client.CoreV1Api(client), kubernetes.client.CustomObjectsApi(client)
    core.create_namespace({"metadata": {"name": NS}})
    root_pem, root_key_pem = make_root()
    core.create_namespaced_secret(
        NS,
        {
            "metadata": {"name": "mesh-root"},
            "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": root_pem, "tls.key": root_key_pem},
        },
    )
    issuer = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Issuer", "metadata": {"name": "mesh-root"}}
    issuer["spec"] = {"ca": {"secretName": "mesh-root"}}
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, "issuers", issuer)
    certificate = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Certificate", "metadata": {"name": "cacerts"}}
    certificate["spec"] = {
        "secretName": "cacerts",
        "isCA": True,
        "commonName": f"intermediate {CLUSTER}",
        "subject": {"organizations": ["mesh lab"]},
        "duration": DURATION,
        "renewBefore": RENEW_BEFORE,
        "privateKey": {"algorithm": "ECDSA", "size": 256},
        "usages": ["cert sign", "crl sign", "digital signature"],
        "issuerRef": {"group": GROUP, "kind": "Issuer", "name": "mesh-root"},
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, "certificates", certificate)
    wait_for("the Issuer to be Ready", lambda: ready(custom, "issuers", "mesh-root"), timeout=30, interval=0.2)
    wait_for("the Certificate to be Ready", lambda: ready(custom, "certificates", "cacerts"), timeout=30, interval=0.2)
    return core, custom, x509.load_pem_x509_certificate(root_pem.encode())


def assert_intermediate_of(root: x509.Certificate, data: dict[str, bytes]) -> x509.Certificate:
    """`data` (a cacerts Secret's) holds a CA certificate issued by `root`, its key, and `root`
    as ca.crt; returns the intermediate."""
    intermediate = x509.load_pem_x509_certificates(data["tls.crt"])[0]
    assert intermediate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    intermediate.verify_directly_issued_by(root)  # raises if root did not sign it
    key = serialization.load_pem_private_key(data["tls.key"], password=None)
    assert key.public_key() == intermediate.public_key(), "tls.key is not the intermediate's key"
    ca = x509.load_pem_x509_certificates(data["ca.crt"])
    assert ca == [root], "ca.crt is not (only) the root"
    return intermediate


def test_the_lab_runs_and_reports_a_cert_manager_controller_per_cluster(lab):
    status = lab_status(lab)
    cluster = status["clusters"][CLUSTER]
    assert cluster["processes"][CERT_MANAGER_CONTROLLER] is True
    assert cluster["cert_manager"]["ready"] is True, cluster
    recorded = json.loads(lab.state_path.read_text())["clusters"][0]
    assert recorded["cert_manager"] is True and recorded["pids"][CERT_MANAGER_CONTROLLER] == cluster["cert_manager"]["pid"]  # fmt: skip
    log = (lab.dir / CLUSTER / f"{CERT_MANAGER_CONTROLLER}.log").read_text()
    assert f"v{versions()['CERT_MANAGER_VERSION']}" in log and "informer caches synced: ready" in log
    served = kubernetes.client.ApisApi(api(lab)).get_api_versions().groups
    assert {"cert-manager.io", "acme.cert-manager.io"} <= {group.name for group in served}


def test_a_ca_issuer_issues_the_intermediate_into_cacerts(cacerts):
    core, _, root = cacerts
    secret, data = secret_data(core, "cacerts")
    assert secret.type == "kubernetes.io/tls"
    assert set(data) == {"tls.crt", "tls.key", "ca.crt"}
    intermediate = assert_intermediate_of(root, data)
    lifetime = intermediate.not_valid_after_utc - intermediate.not_valid_before_utc
    assert datetime.timedelta(minutes=59) <= lifetime <= datetime.timedelta(hours=1, minutes=1), lifetime


def test_the_controller_renews_the_intermediate_by_itself(cacerts):
    core, custom, root = cacerts
    before, data = secret_data(core, "cacerts")
    serial = x509.load_pem_x509_certificates(data["tls.crt"])[0].serial_number
    started = time.monotonic()

    def renewed():
        secret, now = secret_data(core, "cacerts")
        certificate = x509.load_pem_x509_certificates(now["tls.crt"])[0]
        return certificate.serial_number != serial and (secret, now)

    after, data = wait_for("cert-manager to renew the intermediate", renewed, timeout=RENEWS_AFTER + 45, interval=0.5)
    print(f"renewed {time.monotonic() - started:.1f} s after the first check")
    assert after.metadata.uid == before.metadata.uid, "the Secret was replaced, not updated in place"
    assert_intermediate_of(root, data)
    # cert-manager writes the Secret first and the Certificate's status after it (a CI run read
    # the status in between: revision 1 with the new certificate already in the Secret).
    wait_for(
        "cert-manager to record the renewal in the Certificate's status",
        lambda: (
            custom.get_namespaced_custom_object(GROUP, VERSION, NS, "certificates", "cacerts")["status"].get(
                "revision", 0
            )
            >= 2
        ),
        timeout=15,
    )


def test_without_its_crds_the_controller_says_so_and_never_turns_ready(tmp_path):
    """Against a cluster without cert-manager's CRDs the controller runs (as upstream's does,
    waiting for them) but /readyz never answers 200, and its log says why: upstream's informers
    report the lists the API server refuses, and our main names the missing API group."""
    bare = Lab(tmp_path / "bare", clusters=["bare"], standin=False, cert_manager=False).up()
    try:
        port = procs.free_port(set())
        log = tmp_path / "controller.log"  # outside the lab dir, which `down` removes
        argv = [
            cert_manager_binaries()[CERT_MANAGER_CONTROLLER],
            f"--kubeconfig={bare.kubeconfig_path}",
            f"--namespace={NS}",
            f"--healthz-listen-address=127.0.0.1:{port}",
        ]
        pid = procs.start(argv, log)
        try:

            def readyz() -> int:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                        return answer.status
                except urllib.error.HTTPError as error:
                    return error.code

            wait_for("its /readyz to answer", lambda: readyz() == 503, timeout=30, interval=0.2)
            text = wait_for(
                "it to log the missing API group",
                lambda: "does not serve cert-manager.io/v1" in (t := log.read_text()) and t,
                timeout=20,
                interval=0.2,
            )
            assert "are cert-manager's CRDs installed?" in text
            wait_for(
                "upstream's informers to report the refused lists",
                lambda: "the server could not find the requested resource" in log.read_text(),
                timeout=20,
                interval=0.2,
            )
            time.sleep(3)  # it keeps running, and keeps saying it is not ready
            assert procs.alive(pid, str(bare.kubeconfig_path)) and readyz() == 503
        finally:
            procs.stop([pid], str(bare.kubeconfig_path))
        assert "control loops exited" in log.read_text(), "SIGTERM should be a clean stop"
    finally:
        bare.down()
