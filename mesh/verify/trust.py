"""Each cluster's `cacerts`: a valid chain, and every cluster trusting every other one."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Mapping, Optional, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from kubernetes.client.exceptions import ApiException

from ..plan.pki import CACERTS_KEYS
from ..plan.control_plane import cacerts_manifest
from ..plan.names import ISTIO_NAMESPACE
from .results import CACERTS, FAIL, Result, _not_found, _result

# --- cacerts ------------------------------------------------------------------------------


def fingerprint(certificate: x509.Certificate) -> str:
    """Enough of the SHA-256 fingerprint to tell roots apart in a table."""
    return "SHA256 " + certificate.fingerprint(hashes.SHA256()).hex(":")[:23]


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


@dataclass(frozen=True)
class Trust:
    """What one cluster's `cacerts` says: the root its intermediate chains to, and every root
    its `root-cert.pem` holds (two during a root rotation)."""

    signing_root: x509.Certificate
    trusted: tuple[x509.Certificate, ...]


def _cacerts_problems(data: Mapping[str, bytes], now: datetime) -> tuple[list[str], Optional[Trust]]:
    """Everything wrong inside one cluster's bundle, and its roots when they are readable."""
    missing = [key for key in CACERTS_KEYS if not data.get(key)]
    if missing:
        return [f"missing {', '.join(missing)}: istiod fails on a partial bundle"], None
    try:
        intermediate = x509.load_pem_x509_certificate(data["ca-cert.pem"])
        trusted = tuple(x509.load_pem_x509_certificates(data["root-cert.pem"]))
        chain = x509.load_pem_x509_certificates(data["cert-chain.pem"])
        key = serialization.load_pem_private_key(data["ca-key.pem"], password=None)
    except ValueError as error:
        return [f"unreadable PEM data: {error}"], None
    problems = []
    for root in trusted:
        if not (_is_ca(root) and _issued_by(root, root)):
            problems.append(f"root-cert.pem holds {root.subject.rfc4514_string()}, not a self-signed CA certificate")
    if not _is_ca(intermediate):
        problems.append("ca-cert.pem is not a CA certificate: istiod cannot sign workload certificates with it")
    signing_root = next((root for root in trusted if _issued_by(intermediate, root)), None)
    if signing_root is None:
        problems.append(
            f"ca-cert.pem ({intermediate.subject.rfc4514_string()}) is not signed by root-cert.pem "
            f"({', '.join(fingerprint(root) for root in trusted)})"
        )
    elif chain != [intermediate, signing_root]:
        problems.append("cert-chain.pem is not ca-cert.pem followed by the root in root-cert.pem that signed it")
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if key.public_key().public_bytes(encoding, public) != intermediate.public_key().public_bytes(encoding, public):
        problems.append("ca-key.pem is not the key of ca-cert.pem")
    for name, certificate in [("root-cert.pem", root) for root in trusted] + [("ca-cert.pem", intermediate)]:
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            problems.append(
                f"{name} is outside its validity ({certificate.not_valid_before_utc:%Y-%m-%d} to "
                f"{certificate.not_valid_after_utc:%Y-%m-%d})"
            )
    return problems, Trust(signing_root, trusted) if signing_root is not None else None


def check_cacerts(
    bundles: Mapping[str, Optional[Mapping[str, bytes]]],
    mesh_roots: Sequence[x509.Certificate] = (),
    now: Optional[datetime] = None,
) -> list[Result]:
    """Each cluster's `cacerts` is a valid chain, and every cluster trusts every other one.

    `bundles` maps cluster name to the secret's decoded data (None when there is no secret).
    A cluster's intermediate must chain to a root that every other cluster's `root-cert.pem`
    holds, else their workloads reject each other's mTLS; this holds at every phase of a root
    rotation. `mesh_roots` (the stack output `rootCertificate`) are the roots the mesh should
    trust; when given, each cluster must trust exactly those.
    """
    now = now or datetime.now(timezone.utc)
    item = f"Secret {cacerts_manifest()['metadata']['name']}"
    checked: dict[str, tuple[list[str], Optional[Trust]]] = {}
    results = []
    for cluster, data in bundles.items():
        if data is None:
            results.append(Result(CACERTS, cluster, item, FAIL, "not found: istiod would sign with a self-made root"))
        else:
            checked[cluster] = _cacerts_problems(data, now)
    expected = {fingerprint(root) for root in mesh_roots}
    for cluster, (problems, trust) in checked.items():
        if trust is None:
            results.append(_result(CACERTS, cluster, item, problems, ""))
            continue
        signer = fingerprint(trust.signing_root)
        held = {fingerprint(root) for root in trust.trusted}
        if expected and held != expected:
            problems.append(
                f"its root-cert.pem holds {', '.join(sorted(held))}, not the mesh's root certificate "
                f"({', '.join(sorted(expected))})"
            )
        for peer, (_, peer_trust) in checked.items():
            if peer != cluster and peer_trust is not None and trust.signing_root not in peer_trust.trusted:
                problems.append(
                    f"its chain ends in root {signer}, which {peer}'s root-cert.pem does not hold: "
                    f"workloads on {peer} will not trust workloads here"
                )
        others = sorted(held - {signer})
        good = f"valid chain under root {signer}" + (f"; also trusts {', '.join(others)}" if others else "")
        results.append(_result(CACERTS, cluster, item, problems, good))
    return results


def read_cacerts(core) -> Optional[dict[str, bytes]]:
    try:
        secret = core.read_namespaced_secret(cacerts_manifest()["metadata"]["name"], ISTIO_NAMESPACE)
    except ApiException as error:
        if _not_found(error):
            return None
        raise
    return {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}
