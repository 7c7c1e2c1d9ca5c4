"""Each cluster's `cacerts`, in Istio's four-file form or cert-manager's `kubernetes.io/tls` form:
a valid chain, and every cluster trusting every other one."""

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
    its trusted-roots key holds (two during a root rotation)."""

    signing_root: x509.Certificate
    trusted: tuple[x509.Certificate, ...]
    roots_key: str = "root-cert.pem"
    """The key that holds `trusted`: `root-cert.pem`, or `ca.crt` in the tls form."""
    note: str = ""
    """Said after a passing verdict: which form was read, and stale keys of the other one."""


@dataclass(frozen=True)
class _Form:
    """Which keys of `cacerts` hold what, in one of the two forms istiod reads."""

    cert: str  # the signing CA; in the tls form followed by the chain up to the root
    key: str
    roots: str
    chain: Optional[str]  # Istio's `cert-chain.pem`; None when the chain follows the cert in `cert`
    label: str  # named after a passing verdict

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key istiod needs in this form."""
        return (self.cert, self.key, self.roots) + ((self.chain,) if self.chain else ())


# Istio's own four files, as this program writes them.
ISTIO_FORM = _Form("ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem", "")
# The `kubernetes.io/tls` form cert-manager writes: `tls.crt` the intermediate (the issuer's chain
# may follow it), `tls.key` its key, `ca.crt` the issuer's top certificate. istiod (1.14.2 on)
# reads it, with `tls.crt` + `ca.crt` as its chain, whenever `tls.crt` is in its CA directory.
TLS_FORM = _Form("tls.crt", "tls.key", "ca.crt", None, "tls.crt/ca.crt form")


def _form(data: Mapping[str, bytes]) -> _Form:
    """The form istiod reads: the tls one whenever a `tls.crt` file exists, even an empty one."""
    return TLS_FORM if TLS_FORM.cert in data else ISTIO_FORM


def _root_problem(form: _Form, root: x509.Certificate) -> Optional[str]:
    if _is_ca(root) and _issued_by(root, root):
        return None
    subject = root.subject.rfc4514_string()
    if form is TLS_FORM and not _issued_by(root, root):
        # cert-manager puts the top of the chain its issuer returned in ca.crt: with a Vault
        # issuer whose PKI mount's chain lacks the root, that is a Vault intermediate, and each
        # cluster would trust a different "root".
        return (
            f"ca.crt is {subject}, not a self-signed root: the issuer's chain lacks the root "
            "(for Vault, set the PKI mount's chain to include the root)"
        )
    return f"{form.roots} holds {subject}, not a self-signed CA certificate"


def _signing_root(
    form: _Form,
    certificate: x509.Certificate,
    following: Sequence[x509.Certificate],
    trusted: Sequence[x509.Certificate],
) -> tuple[Optional[x509.Certificate], list[str]]:
    """The root in `trusted` that `certificate` chains to through `following` (its issuers in
    order, the root itself optionally last), or None and why not."""
    path = [certificate, *following]  # a root closing the chain signs itself, so it needs no care
    problems = [
        f"{form.cert}'s chain holds {ca.subject.rfc4514_string()}, not a CA certificate"
        for ca in path[1:]
        if not _is_ca(ca)
    ]
    for lower, upper in zip(path, path[1:]):
        if not _issued_by(lower, upper):
            problems.append(
                f"{form.cert}'s chain is broken: {lower.subject.rfc4514_string()} is not signed by the next "
                f"certificate, {upper.subject.rfc4514_string()}"
            )
            return None, problems
    root = next((root for root in trusted if _issued_by(path[-1], root)), None)
    if root is None:
        roots = ", ".join(fingerprint(root) for root in trusted)
        if len(path) == 1:
            what = f"{form.cert} ({certificate.subject.rfc4514_string()}) is"
        else:
            what = f"{form.cert}'s chain ends in {path[-1].subject.rfc4514_string()}, which is"
        problems.append(f"{what} not signed by {form.roots} ({roots})")
    return root, problems


def _stale_note(data: Mapping[str, bytes], intermediate: x509.Certificate, trusted: Sequence[x509.Certificate]) -> str:
    """What to say of Istio's four files left beside the tls form, which istiod then ignores.

    A note, never a failure, even when they hold another intermediate or root: the check says
    whether the mesh works, and istiod neither signs with them nor hands out their roots while
    `tls.crt` is there. They matter only if `tls.crt` went away (istiod would then read them on
    its next start), so the note says to remove them when they differ.
    """
    stale = [key for key in CACERTS_KEYS if key in data]
    if not stale:
        return ""
    try:
        same = x509.load_pem_x509_certificate(data["ca-cert.pem"]) == intermediate and set(
            x509.load_pem_x509_certificates(data["root-cert.pem"])
        ) == set(trusted)
    except (KeyError, ValueError):
        same = False
    if same:
        return f"; {', '.join(stale)} also there, with the same intermediate and roots: istiod ignores them"
    return (
        f"; {', '.join(stale)} also there, with another intermediate or roots: istiod ignores them while "
        "tls.crt is there, but would read them without it: remove them"
    )


def _cacerts_problems(data: Mapping[str, bytes], now: datetime) -> tuple[list[str], Optional[Trust]]:
    """Everything wrong inside one cluster's bundle, in the form istiod reads, and its roots
    when they are readable."""
    form = _form(data)
    missing = [key for key in form.keys if not data.get(key)]
    if missing:
        because = " (tls.crt is there, so istiod reads tls.crt, tls.key and ca.crt)" if form is TLS_FORM else ""
        return [f"missing {', '.join(missing)}: istiod fails on a partial bundle{because}"], None
    try:
        if form.chain is None:
            intermediate, *following = x509.load_pem_x509_certificates(data[form.cert])
        else:
            intermediate, following = x509.load_pem_x509_certificate(data[form.cert]), []
        trusted = tuple(x509.load_pem_x509_certificates(data[form.roots]))
        chain = x509.load_pem_x509_certificates(data[form.chain]) if form.chain else None
        key = serialization.load_pem_private_key(data[form.key], password=None)
    except ValueError as error:
        return [f"unreadable PEM data: {error}"], None
    problems = [problem for problem in (_root_problem(form, root) for root in trusted) if problem]
    if not _is_ca(intermediate):
        problems.append(f"{form.cert} is not a CA certificate: istiod cannot sign workload certificates with it")
    signing_root, chain_problems = _signing_root(form, intermediate, following, trusted)
    problems += chain_problems
    if signing_root is not None and chain is not None and chain != [intermediate, signing_root]:
        problems.append("cert-chain.pem is not ca-cert.pem followed by the root in root-cert.pem that signed it")
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if key.public_key().public_bytes(encoding, public) != intermediate.public_key().public_bytes(encoding, public):
        problems.append(f"{form.key} is not the key of {form.cert}")
    named = [(form.roots, root) for root in trusted] + [(form.cert, intermediate)]
    named += [(f"{form.cert}'s {ca.subject.rfc4514_string()}", ca) for ca in following if ca not in trusted]
    for name, certificate in named:
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            problems.append(
                f"{name} is outside its validity ({certificate.not_valid_before_utc:%Y-%m-%d} to "
                f"{certificate.not_valid_after_utc:%Y-%m-%d})"
            )
    if signing_root is None:
        return problems, None
    note = f" ({form.label})" if form.label else ""
    if form is TLS_FORM:
        note += _stale_note(data, intermediate, trusted)
    return problems, Trust(signing_root, trusted, form.roots, note)


def check_cacerts(
    bundles: Mapping[str, Optional[Mapping[str, bytes]]],
    mesh_roots: Sequence[x509.Certificate] = (),
    now: Optional[datetime] = None,
) -> list[Result]:
    """Each cluster's `cacerts` is a valid chain, and every cluster trusts every other one.

    `bundles` maps cluster name to the secret's decoded data (None when there is no secret).
    Each bundle is read in the form istiod reads (`_form`). A cluster's intermediate must chain
    to a root that every other cluster's trusted roots (`root-cert.pem`, or `ca.crt`) hold, else
    their workloads reject each other's mTLS; this holds at every phase of a root rotation.
    `mesh_roots` (the stack output `rootCertificate`) are the roots the mesh should
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
                f"its {trust.roots_key} holds {', '.join(sorted(held))}, not the mesh's root certificate "
                f"({', '.join(sorted(expected))})"
            )
        for peer, (_, peer_trust) in checked.items():
            if peer != cluster and peer_trust is not None and trust.signing_root not in peer_trust.trusted:
                problems.append(
                    f"its chain ends in root {signer}, which {peer}'s {peer_trust.roots_key} does not hold: "
                    f"workloads on {peer} will not trust workloads here"
                )
        others = sorted(held - {signer})
        good = f"valid chain under root {signer}" + (f"; also trusts {', '.join(others)}" if others else "")
        good += trust.note
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
