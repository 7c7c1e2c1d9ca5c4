"""`certificates.issuer: vault` on the lab: cert-manager's Vault issuer on every cluster has the
intermediates signed by a Vault PKI mount that holds the root; no key of the root is in the
stack's state or on any cluster.

What is real: the engine and providers, the API servers, cert-manager's controller and its Vault
client, istiod. What stands in: Vault, by the lab's stand-in for its PKI secrets engine, token
and Kubernetes auth (`lab/vault/server.py`; it reviews service account tokens with the clusters'
real TokenReview API).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from pulumi import automation as auto

from lab.lab import Lab
from lab.stack import REPO, mesh_config, open_stack, remove_stack
from lab.vault.client import sign_intermediate_policy
from mesh import config
from mesh.verify import FAIL, PASS, check_cacerts, read_cacerts
from mesh.verify.issuance import check_issuance

from .conftest import (
    DeployedMesh,
    assert_istiods_sign_for_the_whole_mesh,
    cacerts,
    certificate,
    changes,
    intermediate,
    openssl,
    plugged_in_ca,
    refused_up,
    renew,
    update,
    wait_for,
)

CLUSTERS = ["east", "west"]
SIGN_PATH = "pki/root/sign-intermediate"
ROLE = "mesh-intermediate"


def vault_certificates(lab: Lab, root: str, **vault) -> dict:
    settings = {
        "server": lab.vault.address,
        "path": SIGN_PATH,
        "caBundle": lab.vault.ca_bundle,
        "rootCertificate": root,
    }
    return {
        "backend": "cert-manager",
        "issuer": "vault",
        "intermediateValidityHours": 720,
        "intermediateEarlyRenewalHours": 240,
        "vault": {**settings, **vault},
    }


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("lab-vault"), clusters=CLUSTERS, vault=True)
    lab.up()
    stack = None
    try:
        pki = lab.vault.setup_mesh_pki("pki")
        config = mesh_config(
            lab.clusters, lab.kubeconfig_path, certificates=vault_certificates(lab, pki.root_certificate)
        )
        stack = open_stack("itest-vault", config, tmp_path_factory.mktemp("state-vault"))
        # The token as a user sets it: a Pulumi secret, kept encrypted in the stack file.
        stack.set_config("mesh:certificates.vault.token", auto.ConfigValue(pki.token, secret=True), path=True)
        config["certificates"]["vault"]["token"] = stack_file_value(stack.name, "token")
        result = stack.up(color="never")
        deployed = DeployedMesh(lab, stack, config, {k: v.value for k, v in result.outputs.items()})
        deployed.pki = pki  # type: ignore[attr-defined]
        yield deployed
    finally:
        try:
            if stack is not None:
                stack.destroy(exclude_protected=True, color="never")
                remove_stack(stack)
        finally:
            lab.down()


def stack_file_value(stack_name: str, key: str):
    document = yaml.safe_load((REPO / f"Pulumi.{stack_name}.yaml").read_text())
    return document["config"]["mesh:certificates"]["vault"][key]


def issuer(mesh, cluster: str) -> dict:
    return mesh.custom(cluster).get_namespaced_custom_object(
        "cert-manager.io", "v1", "istio-system", "issuers", "mesh-vault"
    )


def issuer_ready(mesh, cluster: str) -> bool:
    """The Issuer is Ready for its current spec (cert-manager has checked it since the edit)."""
    current = issuer(mesh, cluster)
    ready = [c for c in current.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
    generation = current["metadata"]["generation"]
    return bool(ready) and ready[0]["status"] == "True" and ready[0].get("observedGeneration") == generation


def east(mesh):
    return next(c for c in config.parse(mesh.config).clusters if c.name == "east")


def verify_results(mesh) -> list:
    roots = x509.load_pem_x509_certificates(mesh.outputs["rootCertificate"].encode())
    return check_cacerts({cluster: read_cacerts(mesh.core(cluster)) for cluster in CLUSTERS}, roots)


def test_vault_signs_every_intermediate_under_its_root_and_no_root_key_leaves_it(mesh, tmp_path):
    root = mesh.pki.root_certificate
    (tmp_path / "root.pem").write_text(root)
    for cluster in CLUSTERS:
        conditions = {c["type"]: c["status"] for c in certificate(mesh, cluster)["status"]["conditions"]}
        assert conditions["Ready"] == "True"
        assert issuer(mesh, cluster)["spec"]["vault"]["auth"] == {
            "tokenSecretRef": {"name": "mesh-vault-token", "key": "token"}
        }
        files = cacerts(mesh, cluster)
        assert files["ca.crt"].strip() == root.strip()  # Vault's root, the same on every cluster
        made = intermediate(files)
        assert made.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert made.issuer == x509.load_pem_x509_certificate(root.encode()).subject
        lifetime = made.not_valid_after_utc - made.not_valid_before_utc
        assert abs(lifetime - datetime.timedelta(hours=720)) < datetime.timedelta(minutes=2)
        (tmp_path / f"{cluster}.pem").write_text(plugged_in_ca(files)[1])
        result = openssl("verify", "-CAfile", str(tmp_path / "root.pem"), str(tmp_path / f"{cluster}.pem"))
        assert result.returncode == 0, result.stderr
        secrets = {s.metadata.name for s in mesh.core(cluster).list_namespaced_secret("istio-system").items}
        assert "mesh-root-ca" not in secrets
    # The root is Vault's: the stack made none, holds no key, exports the pinned certificate.
    state = mesh.stack.export_stack().deployment
    types = {r["type"] for r in state["resources"]}
    assert not {t for t in types if t.startswith("tls:")}, types
    assert mesh.pki.token not in json.dumps(state)  # the token only as a secret
    assert mesh.outputs["rootCertificate"] == root and "rootCertificateAuthority" not in mesh.outputs
    assert (mesh.outputs["certificateBackend"], mesh.outputs["certificateIssuer"]) == ("cert-manager", "vault")
    # It was Vault that signed: the stand-in logged one sign-intermediate per cluster at least.
    log = Path(mesh.lab.vault.log).read_text()
    assert log.count(f"/v1/{SIGN_PATH}") >= len(CLUSTERS), log[-2000:]


def test_mesh_verify_passes_and_each_istiod_signs_for_the_whole_mesh(mesh, tmp_path):
    results = verify_results(mesh)
    assert [(r.cluster, r.status) for r in results] == [(c, PASS) for c in CLUSTERS], results
    assert_istiods_sign_for_the_whole_mesh(mesh, CLUSTERS, tmp_path)


def test_vault_renews_without_up_and_istiod_takes_it(mesh, tmp_path):
    before = intermediate(cacerts(mesh, "east"))
    renewed = renew(mesh, "east")
    assert renewed.public_key().public_numbers() != before.public_key().public_numbers()
    assert_istiods_sign_for_the_whole_mesh(mesh, CLUSTERS, tmp_path)
    assert changes(mesh.stack.preview(color="never")) == {}


def test_a_mount_that_is_not_the_pinned_roots_is_refused_before_anything_changes(mesh):
    """An intermediate mount whose chain was imported without its root; a root of another mount;
    a serving CA that does not match: each refused by `up`, naming the key, nothing changed."""
    vault = mesh.lab.vault.client()
    vault.write("sys/mounts/pki_int", type="pki")
    vault.write("sys/mounts/pki_int/tune", max_lease_ttl="87600h")
    csr = vault.write("pki_int/intermediate/generate/internal", common_name="Vault Intermediate", key_type="ec")
    signed = vault.write(f"{SIGN_PATH}", csr=csr["data"]["csr"], common_name="Vault Intermediate", ttl="8760h")
    vault.write("pki_int/intermediate/set-signed", certificate=signed["data"]["certificate"])  # without the root
    other = mesh.lab.vault.setup_mesh_pki("pki_other", common_name="another root")
    before = {cluster: cacerts(mesh, cluster) for cluster in CLUSTERS}
    settings = mesh.config["certificates"]
    cases = [
        ({"path": "pki_int/root/sign-intermediate"}, "ends at CN=Vault Intermediate"),
        ({"path": "pki_other/root/sign-intermediate"}, "not the pinned root"),
        ({"caBundle": other.root_certificate}, "config mesh:certificates.vault.caBundle"),
        ({"path": "pki_missing/root/sign-intermediate"}, "config mesh:certificates.vault.path"),
    ]
    for change, words in cases:
        changed = dict(settings, vault=dict(settings["vault"], **change))
        message = " ".join(refused_up(mesh, dict(mesh.config, certificates=changed)).split())
        assert words in message, message
        assert mesh.pki.token not in message
    assert {cluster: cacerts(mesh, cluster) for cluster in CLUSTERS} == before
    assert changes(mesh.stack.preview(color="never")) == {}


def test_mesh_verify_reports_a_ca_crt_that_is_not_a_root(mesh):
    """The Issuer edited on the cluster to sign at the intermediate mount (drift `up` did not
    make, and so could not refuse): cert-manager writes the Vault intermediate as ca.crt, and
    `mesh verify` says so. Put back, the next renewal is under the root again."""
    # The operator let the mesh's policy sign at the intermediate mount too.
    policy = sign_intermediate_policy("pki") + sign_intermediate_policy("pki_int")
    mesh.lab.vault.client().write(f"sys/policies/acl/{mesh.pki.policy}", policy=policy)
    custom = mesh.custom("west")
    edited = issuer(mesh, "west")
    edited["spec"]["vault"]["path"] = "pki_int/root/sign-intermediate"
    custom.replace_namespaced_custom_object("cert-manager.io", "v1", "istio-system", "issuers", "mesh-vault", edited)
    try:
        wait_for("cert-manager to take the edited Issuer", lambda: issuer_ready(mesh, "west"), timeout=30)
        renew(mesh, "west")
        files = cacerts(mesh, "west")
        assert "Vault Intermediate" in x509.load_pem_x509_certificate(files["ca.crt"].encode()).subject.rfc4514_string()
        results = {r.cluster: r for r in verify_results(mesh)}
        assert results["west"].status == FAIL and results["east"].status == PASS, results
        assert "ca.crt is CN=Vault Intermediate, not a self-signed root" in results["west"].detail, results["west"]
    finally:
        edited = issuer(mesh, "west")
        edited["spec"]["vault"]["path"] = SIGN_PATH
        custom.replace_namespaced_custom_object(
            "cert-manager.io", "v1", "istio-system", "issuers", "mesh-vault", edited
        )
        wait_for("cert-manager to take the Issuer put back", lambda: issuer_ready(mesh, "west"), timeout=30)
    renew(mesh, "west")
    assert [(r.cluster, r.status) for r in verify_results(mesh)] == [(c, PASS) for c in CLUSTERS]


def test_kubernetes_auth_replaces_the_token_each_cluster_at_its_own_mount(mesh, tmp_path):
    for cluster in CLUSTERS:
        mesh.lab.vault.setup_kubernetes_auth(
            cluster, f"kubernetes-{cluster}", ROLE, "mesh-vault-issuer", "istio-system", [mesh.pki.policy]
        )
    settings = mesh.config["certificates"]
    vault = {k: v for k, v in settings["vault"].items() if k != "token"}
    clusters = [dict(c, vaultAuthPath=f"/v1/auth/kubernetes-{c['name']}") for c in mesh.config["clusters"]]
    update(mesh, certificates=dict(settings, vault=dict(vault, kubernetesRole=ROLE)), clusters=clusters)
    for cluster in CLUSTERS:
        auth = issuer(mesh, cluster)["spec"]["vault"]["auth"]
        assert auth["kubernetes"]["mountPath"] == f"/v1/auth/kubernetes-{cluster}"
        secrets = {s.metadata.name for s in mesh.core(cluster).list_namespaced_secret("istio-system").items}
        assert "mesh-vault-token" not in secrets  # the token is off the clusters
        renew(mesh, cluster)  # signed after a login with the service account's token
    log = Path(mesh.lab.vault.log).read_text()
    assert all(f"/v1/auth/kubernetes-{cluster}/login" in log for cluster in CLUSTERS), log[-2000:]
    assert [(r.cluster, r.status) for r in verify_results(mesh)] == [(c, PASS) for c in CLUSTERS]
    assert_istiods_sign_for_the_whole_mesh(mesh, CLUSTERS, tmp_path)
    assert changes(mesh.stack.preview(color="never")) == {}


def test_the_root_cannot_move_out_of_vault(mesh):
    clusters = [{k: v for k, v in c.items() if k != "vaultAuthPath"} for c in mesh.config["clusters"]]
    message = " ".join(refused_up(mesh, dict(mesh.config, certificates={}, clusters=clusters)).split())
    assert "'ca' cannot follow 'vault'" in message, message


def test_a_login_vault_refuses_fails_up_and_mesh_verify_gives_vaults_reason(mesh):
    """east's auth mount binds the role to another service account: cert-manager's login is
    refused, `up` stops waiting for the Issuer, and `mesh verify` shows Vault's answer. Pointed
    back, a rerun converges."""
    mesh.lab.vault.setup_kubernetes_auth(
        "east", "kubernetes-east-other", ROLE, "someone-else", "istio-system", [mesh.pki.policy]
    )
    good = mesh.config["clusters"]
    wrong = [dict(c, vaultAuthPath="/v1/auth/kubernetes-east-other") if c["name"] == "east" else c for c in good]
    message = refused_up(mesh, dict(mesh.config, clusters=wrong, readyTimeout="20s"))
    assert "mesh-vault" in message, message[-2000:]
    results = {r.item: r for r in check_issuance(mesh.custom("east"), config.parse(mesh.config), east(mesh))}
    assert results["Issuer mesh-vault"].status == FAIL, results
    assert "not authorized" in results["Issuer mesh-vault"].detail, results["Issuer mesh-vault"]
    assert results["Certificate cacerts"].status == PASS  # the intermediate it has is still valid
    update(mesh)
    results = check_issuance(mesh.custom("east"), config.parse(mesh.config), east(mesh))
    assert [r.status for r in results] == [PASS, PASS], results
    assert f"Vault {mesh.lab.vault.address}" in results[0].detail and "renews it at" in results[1].detail
