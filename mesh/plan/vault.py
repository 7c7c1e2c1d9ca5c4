"""A Vault PKI mount as cert-manager's issuer of the intermediates (`certificates.issuer: vault`),
as data: the Issuer on each cluster, what it logs in with, and the checks of the mount's chain.

The root stays in Vault: no key of it is in the stack's state or on any cluster. Vault's
`<mount>/root/sign-intermediate` signs each cluster's CSR with the mount's issuer; cert-manager
writes `ca.crt` from the top of the chain Vault answers with (`ca_chain`, then `issuing_ca`). So
the mount's chain must end at the root the config pins (`vault.rootCertificate`): an
intermediate mount whose chain was imported without its root gives every cluster a `ca.crt`
that is not a root, and `mesh verify` fails on it. `up` reads the mount's `ca_chain` (a public
endpoint) and refuses such a mount before anything changes.

Logging in: a token (a Secret `mesh-vault-token` per cluster, from the secret config), or
Vault's Kubernetes auth: cert-manager requests a short-lived token of the service account
`mesh-vault-issuer` (audiences `vault://istio-system/mesh-vault` and the server) and logs in at the
cluster's own auth mount (`vaultAuthPath`), which reviews it against that cluster's API server.
"""

from __future__ import annotations

import base64
import datetime
from typing import Any, Optional

from cryptography import x509

from ..config import ConfigError, VaultConfig
from .names import ISTIO_NAMESPACE

ISSUER = "mesh-vault"
TOKEN_SECRET = "mesh-vault-token"
TOKEN_KEY = "token"
SERVICE_ACCOUNT = "mesh-vault-issuer"
SIGN_SUFFIX = "/root/sign-intermediate"


def mount(vault: VaultConfig) -> str:
    """The PKI mount of the sign path: `pki` of `pki/root/sign-intermediate`."""
    return str(vault.path)[: -len(SIGN_SUFFIX)]


def chain_url(vault: VaultConfig) -> str:
    """Vault's unauthenticated read of the mount's default issuer and its chain, as PEM."""
    return f"{str(vault.server).rstrip('/')}/v1/{mount(vault)}/ca_chain"


def issuer_manifest(vault: VaultConfig, auth_path: Optional[str]) -> dict[str, Any]:
    """The namespaced Vault Issuer in istio-system; `up` waits for it Ready (Vault answered)."""
    auth: dict[str, Any]
    if vault.kubernetes_role is not None:
        auth = {
            "kubernetes": {
                "role": vault.kubernetes_role,
                "mountPath": auth_path,
                "serviceAccountRef": {"name": SERVICE_ACCOUNT},
            }
        }
    else:
        auth = {"tokenSecretRef": {"name": TOKEN_SECRET, "key": TOKEN_KEY}}
    spec: dict[str, Any] = {"server": vault.server, "path": vault.path, "auth": auth}
    if vault.ca_bundle is not None:
        spec["caBundle"] = base64.b64encode(vault.ca_bundle.encode()).decode()
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Issuer",
        "metadata": {
            "name": ISSUER,
            "namespace": ISTIO_NAMESPACE,
            "annotations": {"pulumi.com/waitFor": "condition=Ready"},
        },
        "spec": {"vault": spec},
    }


def token_secret_manifest() -> dict[str, Any]:
    """The Secret the Issuer reads its Vault token from, without its data (a secret Output)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": TOKEN_SECRET, "namespace": ISTIO_NAMESPACE},
        "type": "Opaque",
    }


def kubernetes_auth_manifests(vault: VaultConfig) -> list[dict[str, Any]]:
    """The service account cert-manager logs in to Vault as, and the right of cert-manager's own
    service account to request its tokens (cert-manager's documented RBAC for `serviceAccountRef`)."""
    namespace, name = vault.cert_manager_service_account.split("/", 1)
    role = f"{SERVICE_ACCOUNT}-token"
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": SERVICE_ACCOUNT, "namespace": ISTIO_NAMESPACE},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": role, "namespace": ISTIO_NAMESPACE},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["serviceaccounts/token"],
                    "resourceNames": [SERVICE_ACCOUNT],
                    "verbs": ["create"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": role, "namespace": ISTIO_NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]


def check_chain(vault: VaultConfig, chain_pem: str) -> None:
    """Refuse a mount whose chain does not end at the pinned root: cert-manager would write its
    top certificate into every `ca.crt`, and istiod would trust it as the mesh's root."""
    where = f"config mesh:certificates.vault.rootCertificate: the mount {mount(vault)!r} at {vault.server}"
    try:
        chain = x509.load_pem_x509_certificates(chain_pem.encode())
    except ValueError:
        chain = []
    if not chain:
        raise ConfigError(
            f"config mesh:certificates.vault.path: {vault.path!r}: the mount {mount(vault)!r} at {vault.server} answered "
            f"no certificate chain ({chain_url(vault)}); expected a PKI mount with an issuer (a root generated or "
            "an intermediate set-signed)"
        )
    pinned = x509.load_pem_x509_certificate(str(vault.root_certificate).encode())
    top = chain[-1]
    if top.subject != top.issuer:
        raise ConfigError(
            f"{where} has a chain that ends at {top.subject.rfc4514_string()}, issued by "
            f"{top.issuer.rfc4514_string()}, not at a root: cert-manager would write that certificate into every "
            "cluster's ca.crt, and istiod would trust it as the mesh's root. Import the mount's chain with its "
            "root (`vault write <mount>/intermediate/set-signed certificate=@chain-with-root.pem`), or sign at "
            "the root's mount"
        )
    if top != pinned:
        raise ConfigError(
            f"{where} has the root {top.subject.rfc4514_string()} (serial {top.serial_number:x}), not the pinned "
            f"root {pinned.subject.rfc4514_string()} (serial {pinned.serial_number:x}): the intermediates would be "
            "under another root than the mesh trusts. Pin the mount's root, or point path at the mount of the "
            "pinned one (a new root is a root rotation, which the cert-manager backend does not do)"
        )


def check_root_source(last_outputs: dict[str, Any], issuer: str, vault: VaultConfig) -> None:
    """The mesh's root stays where it is: a stack that made its own root cannot move to Vault's,
    one on Vault cannot move back or to another Vault root. Each would be a new root, and a
    rotation (every cluster trusting both roots for a while) is not what the cert-manager backend
    does. `last_outputs` are the stack's LAST_OUTPUTS; nothing is refused on a new stack."""
    path = "config mesh:certificates.issuer"
    held_by_stack = bool(last_outputs.get("rootCertificateAuthority"))
    was_vault = last_outputs.get("certificateIssuer") == "vault"
    if issuer == "vault" and held_by_stack:
        raise ConfigError(
            f"{path}: 'vault' cannot follow a root this stack made: Vault's root would be a new root for a mesh "
            "whose workloads trust the stack's, and the cert-manager backend does no root rotation. Keep issuer "
            "'ca' (or backend 'pulumi-tls') on this stack, or build the Vault-rooted mesh on a new stack"
        )
    if was_vault and issuer != "vault":
        raise ConfigError(
            f"{path}: {issuer!r} cannot follow 'vault' on this stack: the root is Vault's and the stack holds no "
            "key of it, so any other issuer would sign under a new root; accepted: issuer 'vault'"
        )
    last_root = last_outputs.get("rootCertificate")
    if issuer == "vault" and was_vault and last_root:
        before = x509.load_pem_x509_certificates(str(last_root).encode())
        if x509.load_pem_x509_certificate(str(vault.root_certificate).encode()) not in before:
            raise ConfigError(
                "config mesh:certificates.vault.rootCertificate: not the root this mesh trusts (the stack's "
                "rootCertificate output): a new root is a root rotation, which the cert-manager backend does not do; "
                "pin the root the mesh has"
            )


def root_expiry_warning(vault: VaultConfig, validity_hours: int, now: datetime.datetime) -> Optional[str]:
    """Vault cuts an intermediate at its issuer's expiry, with a warning cert-manager drops
    (path_root.go; the lab's stand-in does the same): say so when the pinned root expires within
    one intermediate lifetime, since nothing else would."""
    root = x509.load_pem_x509_certificate(str(vault.root_certificate).encode())
    expires = root.not_valid_after_utc
    if now + datetime.timedelta(hours=validity_hours) <= expires:
        return None
    left = expires - now
    return (
        f"Vault's root ({root.subject.rfc4514_string()}) expires {expires:%Y-%m-%d %H:%M} UTC, in "
        f"{max(left.days, 0)} days, before an intermediate of intermediateValidityHours ({validity_hours}) would: "
        "Vault cuts each intermediate at the root's expiry, and when the root expires the mesh stops trusting "
        "itself. A new Vault root is a new mesh (stack): plan it before then"
    )
