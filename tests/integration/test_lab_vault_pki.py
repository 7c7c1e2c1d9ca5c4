"""cert-manager's real Vault Issuer against the lab's Vault stand-in (lab/vault/server.py): each
cluster's intermediate for the mesh, signed by `<mount>/root/sign-intermediate` under a root that
never leaves Vault, with either of the two ways an Issuer logs in (a token in a Secret; the
Kubernetes auth method, reviewed by the cluster's TokenReview API). And what goes wrong: a role
bound to another service account, and a Vault intermediate imported without its root.

One cluster with the real cert-manager controller; every Issuer and Certificate is made at once and
awaited together.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import kubernetes
import pytest

from lab.clusters.controlplane import CERT_MANAGER_NAMESPACE
from lab.lab import Lab
from lab.vault.client import sign_intermediate_policy

from .conftest import lab_status, openssl, verifies, wait_for

CLUSTER = "east"
NS = CERT_MANAGER_NAMESPACE
GROUP, VERSION = "cert-manager.io", "v1"
AUTH_PATH = f"kubernetes-{CLUSTER}"  # one auth mount per cluster: each has its own API server
ISSUER_SA = "vault-issuer"


def certificate_pems(text: str) -> list[str]:
    return [block + "-----END CERTIFICATE-----\n" for block in text.split("-----END CERTIFICATE-----")[:-1]]


def condition(custom: kubernetes.client.CustomObjectsApi, plural: str, name: str) -> dict:
    obj = custom.get_namespaced_custom_object(GROUP, VERSION, NS, plural, name)
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), {})


def issuer(name: str, vault, path: str, auth: dict) -> dict:
    spec = {"server": vault.address, "path": path, "caBundle": base64.b64encode(vault.ca_bundle.encode()).decode()}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Issuer",
        "metadata": {"name": name},
        "spec": {"vault": {**spec, "auth": auth}},
    }


def certificate(name: str, issuer_name: str) -> dict:
    """The mesh's intermediate for one cluster, as the mesh program asks for it."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Certificate",
        "metadata": {"name": name},
        "spec": {
            "secretName": name,
            "isCA": True,
            "commonName": f"istio intermediate {CLUSTER}",
            "subject": {"organizations": ["mesh lab"]},
            "duration": "2160h",
            "privateKey": {"algorithm": "ECDSA", "size": 256},
            "usages": ["cert sign", "crl sign", "digital signature"],
            "issuerRef": {"group": GROUP, "kind": "Issuer", "name": issuer_name},
        },
    }


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("lab-vault"), clusters=[CLUSTER], standin=False, vault=True)
    lab.up()
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="module")
def mesh(lab):
    """Vault set up as a platform engineer would (a root mount, its signing token, Kubernetes
    auth for the cluster; a second mount whose issuer is a Vault intermediate imported without its
    root), and in istio-system one Issuer and one isCA Certificate per case."""
    vault = lab.vault
    root_client = vault.client()
    pki = vault.setup_mesh_pki("pki", common_name="mesh root")
    vault.setup_kubernetes_auth(
        CLUSTER, AUTH_PATH, "istio-ca", ISSUER_SA, NS, [pki.policy], audience=f"vault://{NS}/vault-kubernetes"
    )
    # A role that names another service account: logging in with ISSUER_SA's token must fail.
    root_client.write(
        f"auth/{AUTH_PATH}/role/someone-else",
        bound_service_account_names="someone-else",
        bound_service_account_namespaces=NS,
        token_policies=pki.policy,
    )
    # The pitfall: pki-int's issuer is a Vault intermediate, imported without the root above it.
    root_client.write("sys/mounts/pki-int", type="pki", config={"max_lease_ttl": "43800h"})
    csr = root_client.write("pki-int/intermediate/generate/internal", common_name="vault intermediate", key_type="ec")
    vault_int = root_client.write(
        "pki/root/sign-intermediate", csr=csr["data"]["csr"], common_name="vault intermediate", ttl="43800h"
    )
    root_client.write("pki-int/intermediate/set-signed", certificate=vault_int["data"]["certificate"])
    root_client.write("sys/policies/acl/pki-int-sign", policy=sign_intermediate_policy("pki-int"))
    int_token = root_client.write("auth/token/create", policies=["pki-int-sign"])["auth"]["client_token"]

    client = kubernetes.config.new_client_from_config(str(lab.kubeconfig_path), context=CLUSTER)
    core, custom = kubernetes.client.CoreV1Api(client), kubernetes.client.CustomObjectsApi(client)
    core.create_namespace({"metadata": {"name": NS}})
    core.create_namespaced_service_account(NS, {"metadata": {"name": ISSUER_SA}})
    for name, token in (("vault-token", pki.token), ("vault-int-token", int_token)):
        core.create_namespaced_secret(NS, {"metadata": {"name": name}, "stringData": {"token": token}})
    kubernetes_auth = {
        "role": "istio-ca",
        "mountPath": f"/v1/auth/{AUTH_PATH}",
        "serviceAccountRef": {"name": ISSUER_SA},
    }
    issuers = [
        issuer(
            "vault-token",
            vault,
            "pki/root/sign-intermediate",
            {"tokenSecretRef": {"name": "vault-token", "key": "token"}},
        ),
        issuer("vault-kubernetes", vault, "pki/root/sign-intermediate", {"kubernetes": kubernetes_auth}),
        issuer(
            "vault-denied",
            vault,
            "pki/root/sign-intermediate",
            {"kubernetes": {**kubernetes_auth, "role": "someone-else"}},
        ),
        issuer(
            "vault-int",
            vault,
            "pki-int/root/sign-intermediate",
            {"tokenSecretRef": {"name": "vault-int-token", "key": "token"}},
        ),
    ]
    for body in issuers:
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, "issuers", body)
    for name, issuer_name in (
        ("cacerts", "vault-token"),
        ("cacerts-kubernetes", "vault-kubernetes"),
        ("cacerts-int", "vault-int"),
    ):
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, "certificates", certificate(name, issuer_name))
    for name in ("cacerts", "cacerts-kubernetes", "cacerts-int"):
        wait_for(
            f"Certificate {name} to be Ready",
            lambda: condition(custom, "certificates", name).get("status") == "True",
            timeout=60,
            interval=0.2,
        )
    return {"vault": vault, "pki": pki, "vault_int": vault_int["data"]["certificate"], "core": core, "custom": custom}


def secret(mesh: dict, name: str) -> dict[str, str]:
    data = mesh["core"].read_namespaced_secret(name, NS).data
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def assert_intermediate_under(files: dict[str, str], ca: str, directory: Path, name: str) -> str:
    """tls.crt starts with a CA certificate for tls.key that verifies against `ca` (with the rest
    of tls.crt as the chain); returns that intermediate."""
    chain = certificate_pems(files["tls.crt"])
    result = verifies(chain + [ca], ca, directory, name)  # -untrusted must not be empty
    assert result.returncode == 0, result.stderr
    text = openssl("x509", "-noout", "-text", input_text=chain[0]).stdout
    assert "CA:TRUE" in text and "Certificate Sign, CRL Sign" in text
    public = openssl("x509", "-noout", "-pubkey", input_text=chain[0]).stdout
    assert openssl("pkey", "-pubout", input_text=files["tls.key"]).stdout == public, "tls.key is not its key"
    return chain[0]


def test_lab_status_reports_the_vault_standin(lab):
    status = lab_status(lab)
    vault = status["vault_standin"]
    assert vault["running"] is True and vault["ready"] is True and vault["address"] == lab.vault.address, vault
    assert json.loads(lab.state_path.read_text())["vault"]["pid"] == vault["pid"]
    assert "vault_pki stand-in: listening on" in Path(vault["log"]).read_text()


def test_a_token_secret_issuer_gets_the_intermediate_signed_under_the_vault_root(mesh, tmp_path):
    files = secret(mesh, "cacerts")
    assert set(files) == {"tls.crt", "tls.key", "ca.crt"}
    assert files["ca.crt"].strip() == mesh["pki"].root_certificate.strip(), "ca.crt is not Vault's root"
    intermediate = assert_intermediate_under(files, files["ca.crt"], tmp_path, "token")
    assert len(certificate_pems(files["tls.crt"])) == 1, (
        "a root mount's chain is the root, which cert-manager leaves out"
    )
    # Vault takes the subject from its parameters: cert-manager sends the common name only, so
    # the Certificate's organization is not in the intermediate.
    subject = openssl("x509", "-noout", "-subject", "-nameopt", "RFC2253", input_text=intermediate).stdout
    assert subject.strip() == f"subject=CN=istio intermediate {CLUSTER}"
    ready = condition(mesh["custom"], "issuers", "vault-token")
    assert (ready["status"], ready["reason"]) == ("True", "VaultVerified")


def test_a_kubernetes_auth_issuer_logs_in_with_its_service_account_and_gets_the_same(mesh, lab, tmp_path):
    files = secret(mesh, "cacerts-kubernetes")
    assert files["ca.crt"].strip() == mesh["pki"].root_certificate.strip()
    assert_intermediate_under(files, files["ca.crt"], tmp_path, "kubernetes")
    log = Path(lab.vault.log).read_text()
    assert f"POST /v1/auth/{AUTH_PATH}/login 200" in log


def test_a_kubernetes_role_bound_to_another_service_account_leaves_the_issuer_not_ready(mesh):
    message = wait_for(
        "Issuer vault-denied to report the refused login",
        lambda: (c := condition(mesh["custom"], "issuers", "vault-denied")).get("status") == "False" and c["message"],
        timeout=30,
        interval=0.2,
    )
    assert "Code: 403" in message and "service account name not authorized" in message, message


def test_a_vault_intermediate_imported_without_its_root_gives_a_non_root_ca_crt(mesh, tmp_path):
    """The production pitfall `mesh verify` must report: the mount's ca_chain ends at the Vault
    intermediate, so cert-manager writes that, not a root, as ca.crt, and puts it in tls.crt."""
    files = secret(mesh, "cacerts-int")
    vault_int = mesh["vault_int"].strip()
    assert files["ca.crt"].strip() == vault_int
    issuer_line = openssl("x509", "-noout", "-issuer", "-subject", "-nameopt", "RFC2253", input_text=vault_int).stdout
    assert "issuer=CN=mesh root" in issuer_line, "ca.crt is not self-signed: no root at all"
    chain = certificate_pems(files["tls.crt"])
    assert [c.strip() for c in chain[1:]] == [vault_int]
    assert_intermediate_under(files, mesh["pki"].root_certificate, tmp_path, "int")
