"""The lab's Vault stand-in (lab/vault/server.py) on its own, no cluster: what a user sets up with
`vault write` and what sign-intermediate gives back, read with the openssl CLI the way a user
would check it (subject, SANs, CA:TRUE, key usages, notAfter against ttl and the mount's max,
chain); who is refused; the intermediate mount whose chains lack the root; and the stand-in's
pieces that need no server (its policy subset, Go durations).

One stand-in process for the module, with real openssl behind it.
"""

from __future__ import annotations

import re
import base64
import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from lab import procs
from lab.vault.client import VaultClient, VaultError, setup_mesh_pki
from lab.vault.api import duration_seconds, go_duration
from lab.vault.issuance import TRUNCATED
from lab.vault.policy import Acl, PolicyError, parse

from .conftest import REPO


@pytest.fixture(scope="module")
def vault(tmp_path_factory):
    """A running stand-in: (root's client, its state folder, its log)."""
    lab_dir = tmp_path_factory.mktemp("vault-lab")
    port = procs.free_port(set())
    log = lab_dir / "vault-pki.log"
    pid = procs.start(
        [sys.executable, "-m", "lab.vault.server", "--dir", str(lab_dir), "--port", str(port)], log, cwd=REPO
    )
    state = lab_dir / "vault"
    deadline = time.monotonic() + 20
    while not (state / "address").exists():
        assert procs.alive(pid, str(lab_dir)) and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    root = (state / "root-token").read_text().strip()
    client = VaultClient(f"https://127.0.0.1:{port}", (state / "serving" / "ca.crt").read_text(), root)
    yield client, state, log
    procs.stop([pid], str(lab_dir))
    assert log.read_text().rstrip().endswith("vault_pki stand-in: stopped"), "SIGTERM should be a clean stop"


@pytest.fixture(scope="module")
def mesh_pki(vault):
    client, _, _ = vault
    return setup_mesh_pki(client, "pki", common_name="mesh root", ttl="87600h")


def openssl(*args: str, input: str | None = None) -> str:
    done = subprocess.run(["openssl", *args], input=input, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def new_csr(directory: Path, name: str, subject: str, *extensions: str) -> str:
    """With openssl: a new P-256 key and a CSR for it, as cert-manager or a user makes one."""
    adds = [a for e in extensions for a in ("-addext", e)]
    return openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(directory / f"{name}.key"), "-subj", subject, *adds,
    )  # fmt: skip


def x509(pem: str, *options: str) -> str:
    return openssl("x509", "-noout", *options, input=pem)


def subject(pem: str) -> str:
    return x509(pem, "-subject", "-nameopt", "RFC2253").strip().removeprefix("subject=")


def extension(pem: str, name: str) -> str:
    """openssl's rendering of one extension: 'critical' or not, then its value."""
    lines = x509(pem, "-ext", name).splitlines()
    return ("critical " if lines and lines[0].rstrip().endswith("critical") else "") + " ".join(
        line.strip() for line in lines[1:]
    )


def not_after(pem: str) -> datetime:
    text = x509(pem, "-enddate", "-dateopt", "iso_8601").strip().removeprefix("notAfter=")
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def not_before(pem: str) -> datetime:
    text = x509(pem, "-startdate", "-dateopt", "iso_8601").strip().removeprefix("notBefore=")
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def verify(tmp_path: Path, leaf: str, trusted: str, untrusted: str = "") -> subprocess.CompletedProcess:
    (tmp_path / "trusted.pem").write_text(trusted)
    (tmp_path / "untrusted.pem").write_text(untrusted or trusted)
    (tmp_path / "leaf.pem").write_text(leaf)
    return subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(tmp_path / "trusted.pem"),
            "-untrusted",
            str(tmp_path / "untrusted.pem"),
            str(tmp_path / "leaf.pem"),
        ],
        capture_output=True,
        text=True,
    )


def near(moment: datetime, expected: datetime, seconds: float = 60) -> bool:
    return abs((moment - expected).total_seconds()) <= seconds


def sign(client: VaultClient, mount: str, csr: str, **params) -> dict:
    return client.write(f"{mount}/root/sign-intermediate", csr=csr, **params)


# -- health and who may do what -----------------------------------------------------------


def test_health_answers_anyone_as_an_active_unsealed_vault(vault):
    client, _, _ = vault
    health = client.with_token("").read("sys/health")
    assert (health["initialized"], health["sealed"], health["standby"]) == (True, False, False)
    assert "standin" in health["version"], "the stand-in must not pass for a Vault release"


def test_without_a_fitting_token_every_request_but_the_public_ones_is_denied(vault, mesh_pki, tmp_path):
    client, _, _ = vault
    csr = new_csr(tmp_path, "denied", "/CN=denied")
    for token, errors in (("", ["permission denied"]), ("hvs.not-a-token", ["permission denied", "invalid token"])):
        with pytest.raises(VaultError) as refused:
            sign(client.with_token(token), "pki", csr, common_name="denied")
        assert (refused.value.status, refused.value.errors) == (403, errors)
    # A token that may read the mount's CA but not sign.
    client.write("sys/policies/acl/pki-reader", policy='path "pki/*" { capabilities = ["read", "list"] }')
    reader = client.write("auth/token/create", policies=["pki-reader"])["auth"]
    assert reader["policies"] == ["default", "pki-reader"]
    with pytest.raises(VaultError) as refused:
        sign(client.with_token(reader["client_token"]), "pki", csr, common_name="denied")
    assert (refused.value.status, refused.value.errors) == (403, ["permission denied"])
    # The mesh's token may sign, and nothing else: not even read the mount's tuning.
    signer = client.with_token(mesh_pki.token)
    assert sign(signer, "pki", csr, common_name="allowed")["data"]["certificate"]
    for method, path in (("GET", "sys/mounts/pki/tune"), ("POST", "sys/mounts/other"), ("POST", "auth/token/create")):
        with pytest.raises(VaultError) as refused:
            signer.request(method, path, {"type": "pki"} if method == "POST" else None)
        assert refused.value.status == 403, path
    # Public: the CA, unauthenticated as in Vault's PKI engine.
    assert client.with_token("").read("pki/ca/pem").strip() == mesh_pki.root_certificate.strip()


# -- sign-intermediate ---------------------------------------------------------------------


def test_the_intermediate_carries_the_requested_names_not_the_csrs(vault, mesh_pki, tmp_path):
    """As cert-manager calls it (exclude_cn_from_sans as the string "true", a Go duration): the
    subject is the parameters' (the CSR's O is dropped), the SANs are alt_names, ip_sans and
    uri_sans (sorted DNS names, never the CSR's), CA:TRUE without a path length under a root
    without one, the key usages Vault gives every CA, 2160h from now, under the root."""
    client, _, _ = vault
    csr = new_csr(tmp_path, "east", "/O=from the csr/CN=csr name", "subjectAltName=DNS:from.the.csr")
    started = datetime.now(timezone.utc)
    answer = sign(
        client.with_token(mesh_pki.token), "pki", csr,
        common_name="istio intermediate east", organization="mesh", ttl="2160h0m0s",
        alt_names="istiod.istio-system.svc,east.mesh.example", ip_sans="10.0.0.9",
        uri_sans="spiffe://cluster.local/ns/istio-system/sa/istiod", exclude_cn_from_sans="true",
    )  # fmt: skip
    data, cert = answer["data"], answer["data"]["certificate"]
    assert subject(cert) == "CN=istio intermediate east,O=mesh"
    assert extension(cert, "subjectAltName") == (
        "DNS:east.mesh.example, DNS:istiod.istio-system.svc, IP Address:10.0.0.9, "
        "URI:spiffe://cluster.local/ns/istio-system/sa/istiod"
    )
    assert extension(cert, "basicConstraints") == "critical CA:TRUE"
    assert extension(cert, "keyUsage") == "critical Certificate Sign, CRL Sign"
    assert near(not_after(cert), started + timedelta(hours=2160))
    assert near(not_before(cert), started - timedelta(seconds=30), 5)
    assert x509(cert, "-issuer", "-nameopt", "RFC2253").strip() == f"issuer={subject(mesh_pki.root_certificate)}"
    assert verify(tmp_path, cert, mesh_pki.root_certificate).returncode == 0
    # The response: issuing_ca the root; ca_chain the new certificate, then the root
    # (path_root.go signIntermediateResponse); the serial as Vault writes it.
    assert data["issuing_ca"] == mesh_pki.root_certificate.strip()
    assert data["ca_chain"] == [cert, mesh_pki.root_certificate.strip()]
    # Vault writes the serial's bytes (Go's big.Int.Bytes(): no sign byte) as colon-separated hex
    # pairs, a leading zero nibble kept ("07:0d:..."); openssl prints the DER integer (with a 00
    # sign byte when the high bit is set): the same number either way.
    serial = x509(cert, "-serial").strip().removeprefix("serial=").lower()
    assert re.fullmatch(r"([0-9a-f]{2}:)*[0-9a-f]{2}", data["serial_number"]), data["serial_number"]
    assert int(data["serial_number"].replace(":", ""), 16) == int(serial, 16)
    assert data["expiration"] == int(not_after(cert).timestamp())


def test_the_common_name_joins_the_sans_unless_excluded_or_no_dns_name(vault, mesh_pki, tmp_path):
    client, _, _ = vault
    csr = new_csr(tmp_path, "cn", "/CN=cn")
    cases = {"istiod.example": "DNS:istiod.example", "istio intermediate": ""}
    for common_name, sans in cases.items():
        cert = sign(client, "pki", csr, common_name=common_name)["data"]["certificate"]
        assert extension(cert, "subjectAltName") == sans, common_name
    cert = sign(client, "pki", csr, common_name="istiod.example", exclude_cn_from_sans=True)["data"]["certificate"]
    assert extension(cert, "subjectAltName") == ""
    # Without common_name, the CSR's (use_csr_common_name).
    assert subject(sign(client, "pki", csr)["data"]["certificate"]) == "CN=cn"


def test_a_csr_without_common_name_gets_an_empty_subject_and_vaults_warning(vault, mesh_pki, tmp_path):
    """What a Certificate without commonName gets from a Vault Issuer: cert-manager sends the
    CSR's common name only, Vault takes no other subject field from the CSR, so nothing is left."""
    client, _, _ = vault
    answer = sign(client, "pki", new_csr(tmp_path, "no-cn", "/O=mesh lab"), common_name="")
    assert subject(answer["data"]["certificate"]) == ""
    assert any("generated without a Subject" in warning for warning in answer["warnings"])


def test_use_csr_values_takes_the_subject_and_the_extensions_from_the_csr(vault, mesh_pki, tmp_path):
    client, _, _ = vault
    csr = new_csr(
        tmp_path, "csr-values", "/C=DE/O=csr org/CN=csr name",
        "subjectAltName=DNS:from.the.csr", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        "basicConstraints=critical,CA:TRUE,pathlen:5",
    )  # fmt: skip
    cert = sign(client, "pki", csr, common_name="ignored", use_csr_values=True)["data"]["certificate"]
    assert subject(cert) == "CN=csr name,O=csr org,C=DE"
    assert extension(cert, "subjectAltName") == "DNS:from.the.csr"
    assert extension(cert, "keyUsage") == "critical Digital Signature, Certificate Sign, CRL Sign"
    # Basic constraints are never the CSR's for a CA (certutil signCertificate).
    assert extension(cert, "basicConstraints") == "critical CA:TRUE"


def test_a_ttl_above_the_mounts_max_is_cut_to_it_with_vaults_warning(vault, tmp_path):
    """Vault's default max lease TTL is 32 days (768h); a longer ttl is not an error: the
    certificate gets the max, and the response says so (issue_common.go GetCertificateNotAfter)."""
    client, _, _ = vault
    client.write("sys/mounts/pki-default-max", type="pki")
    client.write("sys/mounts/pki-default-max/tune", max_lease_ttl="1000h")
    root = client.write("pki-default-max/root/generate/internal", common_name="root", ttl="1000h", key_type="ec")
    client.write("sys/mounts/pki-default-max/tune", max_lease_ttl=0)  # back to Vault's 768h
    started = datetime.now(timezone.utc)
    answer = sign(client, "pki-default-max", new_csr(tmp_path, "long", "/CN=long"), common_name="long", ttl="87600h")
    assert near(not_after(answer["data"]["certificate"]), started + timedelta(hours=768))
    assert 'TTL "87600h0m0s" is longer than permitted maxTTL "768h0m0s", so maxTTL is being used' in answer["warnings"]
    assert not_after(root["data"]["certificate"]) > not_after(answer["data"]["certificate"])


def test_a_ttl_beyond_the_issuer_is_truncated_to_its_notafter_unless_enforced(vault, tmp_path):
    """Since Vault 1.17 sign-intermediate truncates to the issuer's notAfter (path_root.go), with a
    warning; enforce_leaf_not_after_behavior applies the issuer's own `err` instead."""
    client, _, _ = vault
    client.write("sys/mounts/pki-short-root", type="pki", config={"max_lease_ttl": "87600h"})
    root = client.write("pki-short-root/root/generate/internal", common_name="short root", ttl="100h", key_type="ec")
    csr = new_csr(tmp_path, "beyond", "/CN=beyond")
    answer = sign(client, "pki-short-root", csr, common_name="beyond", ttl="1000h")
    assert not_after(answer["data"]["certificate"]) == not_after(root["data"]["certificate"])
    assert TRUNCATED in answer["warnings"]
    with pytest.raises(VaultError) as refused:
        sign(client, "pki-short-root", csr, common_name="beyond", ttl="1000h", enforce_leaf_not_after_behavior=True)
    assert refused.value.status == 400
    assert "that is beyond the expiration of the CA certificate at" in refused.value.errors[0]


def test_path_lengths_follow_the_signer(vault, tmp_path):
    """Under a root with pathlen 1 an intermediate gets pathlen 0 (the signer's less one), an
    explicit max_path_length must be below the signer's, and a pathlen-0 CA signs no CA."""
    client, _, _ = vault
    client.write("sys/mounts/pki-pathlen", type="pki", config={"max_lease_ttl": "87600h"})
    client.write(
        "pki-pathlen/root/generate/internal", common_name="pathlen root", ttl="8760h", key_type="ec", max_path_length=1
    )
    csr = new_csr(tmp_path, "pathlen", "/CN=pathlen")
    answer = sign(client, "pki-pathlen", csr, common_name="pathlen 0")
    assert extension(answer["data"]["certificate"], "basicConstraints") == "critical CA:TRUE, pathlen:0"
    assert any("Max path length of the signed certificate is zero" in w for w in answer["warnings"])
    with pytest.raises(VaultError) as refused:
        sign(client, "pki-pathlen", csr, common_name="too long", max_path_length=1)
    assert "the signing CA has a pathLenConstraint of 1" in refused.value.errors[0]
    # That pathlen-0 CA, imported into a mount with its key, may not sign another CA.
    client.write("sys/mounts/pki-pathlen-0", type="pki")
    csr = client.write("pki-pathlen-0/intermediate/generate/internal", common_name="pathlen 0 ca", key_type="ec")
    signed = sign(client, "pki-pathlen", csr["data"]["csr"], common_name="pathlen 0 ca")
    client.write("pki-pathlen-0/intermediate/set-signed", certificate=signed["data"]["certificate"])
    with pytest.raises(VaultError) as refused:
        sign(client, "pki-pathlen-0", new_csr(tmp_path, "leafish", "/CN=x"), common_name="x")
    assert refused.value.errors == [
        "signing certificate has a max path length of zero, and cannot issue further CA certificates"
    ]


def test_an_intermediate_mount_given_only_its_certificate_returns_chains_without_the_root(vault, mesh_pki, tmp_path):
    """The production pitfall: a Vault intermediate imported without its root. Its mount knows no
    root, so sign-intermediate's ca_chain ends at the Vault intermediate (cert-manager then
    writes that intermediate, not a root, as ca.crt); importing the root as well fixes it."""
    client, _, _ = vault
    client.write("sys/mounts/pki-int", type="pki", config={"max_lease_ttl": "43800h"})
    generated = client.write("pki-int/intermediate/generate/internal", common_name="vault intermediate", key_type="ec")
    assert set(generated["data"]) == {"csr", "key_id"}
    requested = openssl("req", "-noout", "-subject", "-nameopt", "RFC2253", input=generated["data"]["csr"])
    assert requested.strip() == "subject=CN=vault intermediate"
    vault_int = sign(client, "pki", generated["data"]["csr"], common_name="vault intermediate", ttl="43800h")
    vault_int_pem = vault_int["data"]["certificate"]

    imported = client.write("pki-int/intermediate/set-signed", certificate=vault_int_pem)["data"]
    ((issuer_id, key_id),) = imported["mapping"].items()
    assert key_id == generated["data"]["key_id"] and imported["imported_issuers"] == [issuer_id]

    cluster = sign(client, "pki-int", new_csr(tmp_path, "west", "/CN=west"), common_name="istio intermediate west")
    cert = cluster["data"]["certificate"]
    assert cluster["data"]["issuing_ca"] == vault_int_pem
    assert cluster["data"]["ca_chain"] == [cert, vault_int_pem], "no root: the mount has none"
    assert client.with_token("").read("pki-int/ca_chain") == vault_int_pem
    assert verify(tmp_path, cert, mesh_pki.root_certificate, vault_int_pem).returncode == 0

    # The same certificate again with its root after it: the root becomes a (keyless) issuer,
    # the default stays, and the chains now end at the root.
    again = client.write(
        "pki-int/intermediate/set-signed", certificate=vault_int_pem + "\n" + mesh_pki.root_certificate
    )
    (root_id,) = again["data"]["imported_issuers"]
    assert again["data"]["mapping"] == {issuer_id: key_id, root_id: ""}
    cluster = sign(client, "pki-int", new_csr(tmp_path, "west2", "/CN=west"), common_name="istio intermediate west")
    assert cluster["data"]["ca_chain"][1:] == [vault_int_pem, mesh_pki.root_certificate.strip()]


def test_set_signed_refuses_what_vault_refuses(vault, tmp_path):
    client, _, _ = vault
    client.write("sys/mounts/pki-refusals", type="pki")
    leaf = openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(tmp_path / "leaf.key"), "-subj", "/CN=leaf", "-days", "1", "-addext", "basicConstraints=CA:FALSE",
    )  # fmt: skip
    cases = {
        "pki": "provided data for import was too short; perhaps a path was passed to the API rather than the contents of a PEM file",
        leaf
        + (
            tmp_path / "leaf.key"
        ).read_text(): "private keys found in the PEM bundle but not allowed by the path; use /issuers/import/bundle",
        leaf: "Error parsing issuer 0: Refusing to import non-CA certificate",
    }
    for certificate, error in cases.items():
        with pytest.raises(VaultError) as refused:
            client.write("pki-refusals/intermediate/set-signed", certificate=certificate)
        assert refused.value.status == 400 and refused.value.errors[0].startswith(error)


def test_what_the_stand_in_does_not_implement_is_refused_by_name(vault, tmp_path):
    client, _, _ = vault
    csr = new_csr(tmp_path, "unimplemented", "/CN=x")
    for params in ({"permitted_dns_domains": "example.com"}, {"format": "der"}, {"other_sans": "1.2.3;utf8:x"}):
        with pytest.raises(VaultError) as refused:
            sign(client, "pki", csr, common_name="x", **params)
        assert refused.value.status == 400 and "not implemented by the lab's Vault stand-in" in refused.value.errors[0]
    answer = sign(client, "pki", csr, common_name="x", no_such_parameter="1")
    assert "Endpoint ignored these unrecognized parameters: [no_such_parameter]" in answer["warnings"]


def test_keys_stay_private_and_the_log_names_no_secret(vault, mesh_pki):
    client, state, log = vault
    keys = list((state / "mounts").rglob("*.pem")) + [state / "serving" / "server.key", state / "serving" / "ca.key"]
    assert keys and all(path.stat().st_mode & 0o777 == 0o600 for path in keys), keys
    assert (state / "root-token").stat().st_mode & 0o777 == 0o600
    assert (state / "state.json").stat().st_mode & 0o777 == 0o600
    text = log.read_text()
    assert "POST /v1/pki/root/sign-intermediate 200" in text
    for secret in (client.token, mesh_pki.token, "BEGIN"):
        assert secret not in text
    stored = (state / "state.json").read_text()
    assert client.token not in stored and mesh_pki.token not in stored and "PRIVATE KEY" not in stored


# -- Kubernetes auth, as far as it goes without a cluster ------------------------------------


def unsigned_jwt(claims: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


def test_kubernetes_login_checks_the_role_before_asking_the_cluster(vault):
    """path_login.go: the JWT's service account name, namespace and audience against the role
    (403 with the reason), then the TokenReview, whose failure is a bare permission denied."""
    client, _, _ = vault
    client.write("sys/auth/kubernetes-nowhere", type="kubernetes")
    client.write("auth/kubernetes-nowhere/config", kubernetes_host="https://127.0.0.1:1")
    answer = client.write(
        "auth/kubernetes-nowhere/role/issuer",
        bound_service_account_names="vault-issuer",
        bound_service_account_namespaces="istio-system",
        token_policies="pki-sign-intermediate",
        audience="vault://istio-system/vault",
    )
    assert answer is None, "a role with an audience draws no warning"

    def claims(name: str, namespace: str, audience: str) -> dict:
        account = {"name": name, "uid": "1234"}
        return {
            "aud": [audience],
            "exp": time.time() + 600,
            "kubernetes.io": {"namespace": namespace, "serviceaccount": account},
        }

    anonymous = client.with_token("")
    cases = {
        ("someone-else", "istio-system", "vault://istio-system/vault"): "service account name not authorized",
        ("vault-issuer", "default", "vault://istio-system/vault"): "namespace not authorized",
        (
            "vault-issuer",
            "istio-system",
            "another",
        ): "invalid audience (aud) claim: audience claim does not match any expected audience",
        ("vault-issuer", "istio-system", "vault://istio-system/vault"): "permission denied",  # no cluster to review it
        ("not", "a", "jwt"): "permission denied",
    }
    for (name, namespace, audience), error in cases.items():
        jwt = "not-a-jwt" if name == "not" else unsigned_jwt(claims(name, namespace, audience))
        with pytest.raises(VaultError) as refused:
            anonymous.write("auth/kubernetes-nowhere/login", role="issuer", jwt=jwt)
        assert (refused.value.status, refused.value.errors) == (403, [error]), name
    with pytest.raises(VaultError) as refused:
        anonymous.write("auth/kubernetes-nowhere/login", role="nobody", jwt="x")
    assert (refused.value.status, refused.value.errors) == (400, ['invalid role name "nobody"'])


# -- pieces without a server ---------------------------------------------------------------


def test_policies_match_paths_as_vault_does():
    rules = parse(
        """
        # the mesh's signer
        path "pki/root/sign-intermediate" { capabilities = ["update"] }
        path "pki/*" { capabilities = ["read"] }
        path "pki/+/sign-intermediate" { capabilities = ["create"] }
        path "secret/*" { capabilities = ["deny"] }
        /* a comment */ path "sys/auth/*" { capabilities = ["update", "sudo"] }
        """
    )
    acl = Acl.of([rules, {"secret/*": {"read"}}])
    assert acl.allows("pki/root/sign-intermediate", "update")
    assert not acl.allows("pki/root/sign-intermediate", "read"), "the exact rule alone counts"
    assert acl.capabilities("pki/issuer/sign-intermediate") == {"create"}, "+ beats a shorter glob"
    assert acl.capabilities("pki/ca/pem") == {"read"}
    assert not acl.allows("secret/x", "read"), "deny wins over another policy's read"
    assert acl.allows("sys/auth/kubernetes", "update", sudo=True)
    assert not acl.allows("other", "read")
    assert Acl.of([], root=True).allows("anything", "delete", sudo=True)
    for text in ('path "x" { allowed_parameters = {} }', 'path "x" { policy = "write" }', 'key "x" {}'):
        with pytest.raises(PolicyError, match="not supported by the lab's Vault stand-in"):
            parse(text)
    with pytest.raises(PolicyError, match="invalid capability"):
        parse('path "x" { capabilities = ["write"] }')


def test_durations_read_and_print_as_go_does():
    assert [duration_seconds(v) for v in ("2160h0m0s", "87600h", "1.5h", "90m", "45", 45, "2d", "0")] == [
        7776000,
        315360000,
        5400,
        5400,
        45,
        45,
        172800,
        0,
    ]
    assert [go_duration(s) for s in (2764800, 315360000, 90, 45, 0)] == ["768h0m0s", "87600h0m0s", "1m30s", "45s", "0s"]
    assert duration_seconds("") == 0
    for bad in ("1x", "h", "1h2", ".h", True):
        with pytest.raises(ValueError):
            duration_seconds(bad)
