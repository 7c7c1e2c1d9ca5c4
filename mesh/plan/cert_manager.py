"""Each cluster's intermediate CA issued and renewed by cert-manager (`certificates.backend:
cert-manager`), as data: the Issuer that signs with the mesh's root, and the Certificate whose
Secret is `cacerts`.

The Certificate asks for what `mesh/plan/pki.py` describes for the pulumi-tls intermediate: a CA
(`isCA`), `O=Istio, CN=Intermediate CA, L=<cluster>`, the SAN `istiod.istio-system.svc`, the
same key usages, the mesh's key algorithm and size, the intermediate lifetime; cert-manager
renews it `intermediateEarlyRenewalHours` before it expires (its own default, a third of the
lifetime, when that is 0) with a new key each time, without any `up`. Its Secret has the
`kubernetes.io/tls` form, which istiod reads as its plug-in CA: `tls.crt` the intermediate,
`tls.key` its key, `ca.crt` the issuer's top certificate, the mesh's root.

The issuer (`certificates.issuer`) is a CA issuer holding the root the stack holds (`ca`): the
root's key then sits in a Secret (`mesh-root-ca`) on every cluster, readable by whoever can read
Secrets in istio-system; or a Vault PKI mount that holds the root (`vault`, `mesh/plan/vault.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..config import CertificateConfig, ClusterConfig
from . import vault
from .control_plane import cacerts_manifest
from .names import ISTIO_NAMESPACE
from .pki import INTERMEDIATE_COMMON_NAME, ISTIOD_SAN, ORGANIZATION

API_VERSION = "cert-manager.io/v1"
# cert-manager's own CRDs that `up` needs on every cluster before anything is made there.
REQUIRED_CRDS = ("certificates.cert-manager.io", "issuers.cert-manager.io")
ROOT_SECRET = "mesh-root-ca"
ISSUER = "mesh-root-ca"
# cert-manager's names of the intermediate's key usages (pki.CA_USES in pulumi-tls' words).
USAGES = ("digital signature", "content commitment", "key encipherment", "cert sign")
KEY_SIZES = {"P256": 256, "P384": 384, "P521": 521}
CACERTS = cacerts_manifest()["metadata"]["name"]


def root_secret_manifest() -> dict[str, Any]:
    """The CA issuer's Secret without its data (the root's certificate and key, from the stack)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": ROOT_SECRET, "namespace": ISTIO_NAMESPACE},
        "type": "kubernetes.io/tls",
    }


def issuer_manifest() -> dict[str, Any]:
    """A namespaced CA issuer in istio-system: it signs with the root in `mesh-root-ca`."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Issuer",
        "metadata": {
            "name": ISSUER,
            "namespace": ISTIO_NAMESPACE,
            "annotations": {"pulumi.com/waitFor": "condition=Ready"},
        },
        "spec": {"ca": {"secretName": ROOT_SECRET}},
    }


def private_key(certificates: CertificateConfig) -> dict[str, Any]:
    """The intermediate's key as the mesh's settings say, a new one at every renewal."""
    if certificates.key_algorithm == "RSA":
        return {"algorithm": "RSA", "size": certificates.rsa_bits, "rotationPolicy": "Always"}
    return {"algorithm": "ECDSA", "size": KEY_SIZES[certificates.ecdsa_curve], "rotationPolicy": "Always"}


def intermediate_certificate_manifest(
    cluster_name: str, certificates: CertificateConfig, issuer: str = ISSUER
) -> dict[str, Any]:
    """The Certificate whose Secret is `cacerts`; `up` waits until it is Ready (issued)."""
    spec: dict[str, Any] = {
        "secretName": CACERTS,
        "isCA": True,
        "commonName": INTERMEDIATE_COMMON_NAME,
        "subject": {"organizations": [ORGANIZATION], "localities": [cluster_name]},
        "dnsNames": [ISTIOD_SAN],
        "usages": list(USAGES),
        "duration": f"{certificates.intermediate_validity_hours}h",
        "privateKey": private_key(certificates),
        "issuerRef": {"group": "cert-manager.io", "kind": "Issuer", "name": issuer},
    }
    if certificates.intermediate_early_renewal_hours:
        spec["renewBefore"] = f"{certificates.intermediate_early_renewal_hours}h"
    return {
        "apiVersion": API_VERSION,
        "kind": "Certificate",
        "metadata": {
            "name": CACERTS,
            "namespace": ISTIO_NAMESPACE,
            "annotations": {"pulumi.com/waitFor": "condition=Ready"},
        },
        "spec": spec,
    }


@dataclass(frozen=True)
class Issuance:
    """What one cluster's intermediate is issued from, in the order it is made: the issuer's
    Secret (its data filled in by the resources: `holds` says with what), the objects the Issuer
    needs besides, the Issuer (Ready once it can sign), the Certificate (Ready once issued)."""

    secret: Optional[dict[str, Any]]
    holds: Optional[str]
    """What the Secret holds: "root" (the stack's signing root) or "vault-token" (the config's)."""
    objects: tuple[dict[str, Any], ...]
    issuer: dict[str, Any]
    certificate: dict[str, Any]


def issuance(cluster: ClusterConfig, certificates: CertificateConfig) -> Issuance:
    """The issuer `certificates.issuer` names, on `cluster`, and the Certificate it signs."""
    if certificates.issuer == "vault":
        settings = certificates.vault
        by_token = settings.token is not None
        return Issuance(
            vault.token_secret_manifest() if by_token else None,
            "vault-token" if by_token else None,
            () if by_token else tuple(vault.kubernetes_auth_manifests(settings)),
            vault.issuer_manifest(settings, cluster.vault_auth_path),
            intermediate_certificate_manifest(cluster.cluster_name, certificates, vault.ISSUER),
        )
    return Issuance(
        root_secret_manifest(),
        "root",
        (),
        issuer_manifest(),
        intermediate_certificate_manifest(cluster.cluster_name, certificates),
    )
