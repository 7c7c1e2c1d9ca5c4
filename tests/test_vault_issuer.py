"""`certificates.issuer: vault`: the config, the resource graph with Pulumi mocks, the check of the
mount's chain (certificates from the openssl CLI) and the switches refused. The lab test
(tests/integration/test_lab_vault_issuer.py) runs it against real cert-manager, the lab's Vault PKI
stand-in and real istiod."""

from __future__ import annotations

import copy
import datetime
import subprocess
from pathlib import Path

import pytest

from mesh import config
from mesh.config import ConfigError
from mesh.plan.vault import check_chain, check_root_source, root_expiry_warning

from .test_cert_manager import on_cluster
from .test_mesh_graph import build, by_kind


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pems(tmp_path_factory) -> dict[str, str]:
    """A root, another root, and an intermediate CA under the first (as a Vault `pki_int` has)."""
    d: Path = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for name in ("root", "other"):
        _openssl("req", "-x509", *ec, "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.pem"),
                 "-subj", f"/O=Example/CN={name} CA", "-days", "30")  # fmt: skip
    _openssl("req", *ec, "-keyout", str(d / "int.key"), "-out", str(d / "int.csr"), "-subj", "/CN=Vault Intermediate")
    (d / "ext").write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
    _openssl("x509", "-req", "-in", str(d / "int.csr"), "-CA", str(d / "root.pem"), "-CAkey", str(d / "root.key"),
             "-out", str(d / "int.pem"), "-days", "20", "-extfile", str(d / "ext"))  # fmt: skip
    return {name: (d / f"{name}.pem").read_text() for name in ("root", "other", "int")}


# Where `pulumi config set --secret --path mesh:certificates.vault.token` puts the mark.
SECRET = ("mesh:certificates",)


def vault_mesh(raw: dict, root: str, **vault) -> dict:
    raw = copy.deepcopy(raw)
    settings = {"server": "https://vault.invalid:8200", "path": "pki/root/sign-intermediate", "rootCertificate": root}
    raw["certificates"] = {"backend": "cert-manager", "issuer": "vault", "vault": {**settings, **vault}}
    return raw


def test_token_auth_each_cluster_gets_a_vault_issuer_and_no_root_of_the_stack(east_west, pems):
    raw = vault_mesh(east_west, pems["root"], token="hvs.not-a-real-token", caBundle=pems["other"])
    cfg, registrations, outputs = build(raw, secret_keys=SECRET)
    for cluster in cfg.clusters:
        mine = on_cluster(registrations, cluster.name)
        (secret,) = by_kind(mine, "Secret", "mesh-vault-token", "istio-system")
        # The token only ever travels as a secret.
        assert "stringData" in secret.secret_inputs and secret.inputs["stringData"] == {"token": "hvs.not-a-real-token"}
        (issuer,) = by_kind(mine, "Issuer", "mesh-vault", "istio-system")
        vault = issuer.inputs["spec"]["vault"]
        assert vault["server"] == "https://vault.invalid:8200" and vault["path"] == "pki/root/sign-intermediate"
        assert vault["auth"] == {"tokenSecretRef": {"name": "mesh-vault-token", "key": "token"}}
        assert vault["caBundle"]  # base64 of the PEM, as cert-manager reads it
        assert secret.urn in issuer.dependencies
        (certificate,) = by_kind(mine, "Certificate", "cacerts", "istio-system")
        assert certificate.inputs["spec"]["issuerRef"]["name"] == "mesh-vault"
        assert issuer.urn in certificate.dependencies
        assert (
            by_kind(mine, "Secret", "mesh-root-ca") == [] and by_kind(mine, "ServiceAccount", "mesh-vault-issuer") == []
        )
    # The root is Vault's: no root of pulumi-tls, no key anywhere in the state.
    assert not [r for r in registrations if r.type.startswith("tls:")]
    assert outputs["rootCertificate"] == pems["root"]
    assert "rootCertificateAuthority" not in outputs
    assert (outputs["certificateBackend"], outputs["certificateIssuer"]) == ("cert-manager", "vault")


def test_kubernetes_auth_logs_in_at_each_clusters_own_mount_as_a_service_account(east_west, pems):
    raw = vault_mesh(east_west, pems["root"], kubernetesRole="mesh-intermediate")
    for cluster in raw["clusters"]:
        cluster["vaultAuthPath"] = f"/v1/auth/kubernetes-{cluster['name']}"
    cfg, registrations, _ = build(raw)
    for cluster in cfg.clusters:
        mine = on_cluster(registrations, cluster.name)
        (issuer,) = by_kind(mine, "Issuer", "mesh-vault", "istio-system")
        assert issuer.inputs["spec"]["vault"]["auth"] == {
            "kubernetes": {
                "role": "mesh-intermediate",
                "mountPath": f"/v1/auth/kubernetes-{cluster.name}",
                "serviceAccountRef": {"name": "mesh-vault-issuer"},
            }
        }
        (account,) = by_kind(mine, "ServiceAccount", "mesh-vault-issuer", "istio-system")
        (role,) = by_kind(mine, "Role", "mesh-vault-issuer-token", "istio-system")
        assert role.inputs["rules"] == [
            {
                "apiGroups": [""],
                "resources": ["serviceaccounts/token"],
                "resourceNames": ["mesh-vault-issuer"],
                "verbs": ["create"],
            }
        ]
        (binding,) = by_kind(mine, "RoleBinding", "mesh-vault-issuer-token", "istio-system")
        assert binding.inputs["subjects"] == [
            {"kind": "ServiceAccount", "name": "cert-manager", "namespace": "cert-manager"}
        ]
        assert {account.urn, role.urn, binding.urn} <= set(issuer.dependencies)
        assert by_kind(mine, "Secret", "mesh-vault-token") == []


@pytest.mark.parametrize(
    "change,key,words",
    [
        (lambda c: c.update(backend="pulumi-tls"), "certificates.issuer", "set backend: cert-manager"),
        (lambda c: c["vault"].pop("rootCertificate"), "certificates.vault.rootCertificate", "missing"),
        (lambda c: c["vault"].pop("token"), "certificates.vault", "neither is set"),
        (lambda c: c["vault"].update(kubernetesRole="r"), "certificates.vault", "both are set"),
        (lambda c: c["vault"].update(path="pki/sign/istio"), "certificates.vault.path", "sign-intermediate"),
        (lambda c: c["vault"].update(server="http://vault:8200"), "certificates.vault.server", "https://"),
        (lambda c: c["vault"].update(rootCertificate="not a pem"), "certificates.vault.rootCertificate", "PEM"),
        (lambda c: c.update(issuer="ca"), "certificates.vault.", "no vault keys while issuer is 'ca'"),
        (lambda c: c.update(rootValidityHours=1000), "certificates.rootValidityHours", "the root is Vault's"),
    ],
)
def test_a_vault_issuer_without_what_it_needs_is_refused_naming_the_key(east_west, pems, change, key, words):
    raw = vault_mesh(east_west, pems["root"], token="hvs.secret-value")
    change(raw["certificates"])
    with pytest.raises(ConfigError) as refused:
        config.parse(raw)
    assert f"config mesh:{key}" in str(refused.value) and words in str(refused.value)
    assert "hvs.secret-value" not in str(refused.value)


def test_a_pinned_intermediate_is_refused_it_is_not_a_root(east_west, pems):
    with pytest.raises(ConfigError, match="expected a root: a self-signed CA certificate .*issued by CN=root CA"):
        config.parse(vault_mesh(east_west, pems["int"], token="t"))


def test_kubernetes_auth_needs_one_auth_mount_per_cluster(east_west, pems):
    raw = vault_mesh(east_west, pems["root"], kubernetesRole="mesh")
    with pytest.raises(ConfigError, match=r"config mesh:clusters\[0\].vaultAuthPath: missing.*kubernetes-"):
        config.parse(raw)
    for cluster in raw["clusters"]:
        cluster["vaultAuthPath"] = "/v1/auth/kubernetes"
    with pytest.raises(ConfigError, match=r"vaultAuthPath.*already used"):
        config.parse(raw)
    token = vault_mesh(east_west, pems["root"], token="t")
    token["clusters"][0]["vaultAuthPath"] = "/v1/auth/kubernetes"
    with pytest.raises(ConfigError, match="no vaultAuthPath without certificates.vault.kubernetesRole"):
        config.parse(token)


def test_the_mounts_chain_must_end_at_the_pinned_root(east_west, pems):
    settings = config.parse(vault_mesh(east_west, pems["root"], token="t")).certificates.vault
    check_chain(settings, pems["int"] + pems["root"])  # an intermediate mount imported with its root
    check_chain(settings, pems["root"])  # the root's own mount
    # An intermediate mount imported without its root: cert-manager would write it as ca.crt.
    with pytest.raises(
        ConfigError, match="ends at CN=Vault Intermediate, issued by CN=root CA,O=Example, not at a root"
    ):
        check_chain(settings, pems["int"])
    with pytest.raises(ConfigError, match="has the root .*CN=other CA.*not the pinned root .*CN=root CA"):
        check_chain(settings, pems["other"])
    with pytest.raises(ConfigError, match="config mesh:certificates.vault.path: .*answered no certificate chain"):
        check_chain(settings, "")


def test_the_root_never_changes_source_on_a_stack(east_west, pems):
    vault = config.parse(vault_mesh(east_west, pems["root"], token="t")).certificates.vault
    check_root_source({}, "vault", vault)  # a new stack
    check_root_source({"certificateIssuer": "vault", "rootCertificate": pems["root"]}, "vault", vault)
    stack_root = {"rootCertificateAuthority": {"generation": 0}, "certificateIssuer": "ca"}
    with pytest.raises(ConfigError, match="'vault' cannot follow a root this stack made"):
        check_root_source(stack_root, "vault", vault)
    with pytest.raises(ConfigError, match="'ca' cannot follow 'vault'"):
        check_root_source({"certificateIssuer": "vault"}, "ca", vault)
    with pytest.raises(ConfigError, match="vault.rootCertificate: not the root this mesh trusts"):
        check_root_source({"certificateIssuer": "vault", "rootCertificate": pems["other"]}, "vault", vault)
    # Refused by the program too, before anything is registered.
    with pytest.raises(Exception, match="'vault' cannot follow a root this stack made"):
        build(vault_mesh(east_west, pems["root"], token="t"), previous_outputs=stack_root, secret_keys=SECRET)


def test_a_vault_root_expiring_within_an_intermediates_life_is_said(east_west, pems):
    vault = config.parse(vault_mesh(east_west, pems["root"], token="t")).certificates.vault
    now = datetime.datetime.now(datetime.timezone.utc)
    # The fixture's root lives 30 days.
    assert root_expiry_warning(vault, 24 * 7, now) is None
    warning = root_expiry_warning(vault, 24 * 60, now)
    assert warning is not None and "Vault's root (CN=root CA,O=Example) expires" in warning
    assert "in 29 days" in warning or "in 30 days" in warning
    assert "Vault cuts each intermediate at the root's expiry" in warning


def test_a_token_in_plain_text_is_refused_before_anything(east_west, pems):
    with pytest.raises(Exception) as refused:
        build(vault_mesh(east_west, pems["root"], token="hvs.plain-text-token"))
    message = str(refused.value)
    assert "config mesh:certificates.vault.token: given in plain text" in message
    assert "pulumi config set --secret --path mesh:certificates.vault.token" in message
    assert "hvs.plain-text-token" not in message
