"""What Vault's PKI engine decides for a CA certificate it generates or signs, as plain functions:
which request fields the CA paths take (builtin/logical/pki/fields.go), the subject and SANs
(issuing/issue_common.go GenerateCreationBundle), notBefore and notAfter against the mount's TTLs
and the issuer's (GetCertificateNotAfter), key usages, key sizes and the signature's hash
(sdk/helper/certutil), and the engine's warnings, word for word. lab/vault/server.py serves them."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from . import x509
from .api import Fields, VaultError, go_duration, unsupported

# builtin/logical/pki/path_root.go
TRUNCATED = "the signed intermediary CA certificate's notAfter was truncated to the issuer's notAfter"
NO_AIA = (
    "This mount hasn't configured any authority information access (AIA) fields; this may make it harder for "
    "systems to find missing certificates in the chain or to validate revocation status of certificates. Consider "
    "updating /config/urls or the newly generated issuer with this information."
)
NO_AIA_CSR = NO_AIA + (
    " Since this certificate is an intermediate, it might be useful to regenerate this certificate after fixing "
    "this problem for the root mount."
)
NO_SUBJECT = (
    "This issuer certificate was generated without a Subject; this makes it likely that issuing leaf certs with "
    "this certificate will cause TLS validation libraries to reject this certificate."
)


def _lists(*names: str) -> dict[str, tuple[str, list]]:
    return {name: ("strings", []) for name in names}


# builtin/logical/pki/fields.go: addIssueAndSignCommonFields + addCACommonFields.
CA_COMMON = {
    "common_name": ("string", ""),
    "alt_names": ("string", ""),
    "ip_sans": ("strings", []),
    "uri_sans": ("strings", []),
    "other_sans": ("strings", []),
    "exclude_cn_from_sans": ("bool", False),
    "format": ("string", "pem"),
    "private_key_format": ("string", "der"),
    "ttl": ("duration", 0),
    "not_after": ("string", ""),
    "not_before_duration": ("duration", 30),
    "serial_number": ("string", ""),
    **_lists("ou", "organization", "country", "locality", "province", "street_address", "postal_code"),
}
# fields.go: addCAIssueFields (name constraints are not implemented here).
NAME_CONSTRAINTS = (
    "permitted_dns_domains",
    "excluded_dns_domains",
    "permitted_ip_ranges",
    "excluded_ip_ranges",
    "permitted_email_addresses",
    "excluded_email_addresses",
    "permitted_uri_domains",
    "excluded_uri_domains",
)
CA_ISSUE = {"max_path_length": ("int", -1), "issuer_name": ("string", ""), **_lists(*NAME_CONSTRAINTS)}
# fields.go: addCAKeyGenerationFields.
KEY_GENERATION = {
    "key_type": ("string", "rsa"),
    "key_bits": ("int", 0),
    "signature_bits": ("int", 0),
    "use_pss": ("bool", False),
    "key_name": ("string", ""),
    "managed_key_name": ("string", ""),
    "managed_key_id": ("string", ""),
}
UNIMPLEMENTED = ("other_sans", "use_pss", "managed_key_name", "managed_key_id", *NAME_CONSTRAINTS)


# issue_common.go: labelPattern, leftWildLabelPattern, hostnamePattern, wildHostnameRegex.
_LABEL = r"([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])"
_LEFT_WILD = rf"(\*|\*{_LABEL}|{_LABEL}\*|{_LABEL}\*{_LABEL})"
_WILD_HOSTNAME = re.compile(rf"^({_LEFT_WILD}\.)?({_LABEL}\.)*{_LABEL}\.?\Z")  # Go's $: the end only
# Go's pkix.Name.ToRDNSequence order, with the fields that fill each attribute.
_SUBJECT = (
    ("C", "country"),
    ("ST", "province"),
    ("L", "locality"),
    ("street", "street_address"),
    ("postalCode", "postal_code"),
    ("O", "organization"),
    ("OU", "ou"),
)


def _ascii(name: str) -> str:
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode()
    except UnicodeError as error:
        raise VaultError(400, f"idna: {error}") from None


@dataclass
class Names:
    subject: list[tuple[str, str]]
    dns: list[str]
    emails: list[str]
    ips: list[str]
    uris: list[str]

    def alt_names(self) -> x509.Extension | None:
        # Go marks the extension critical when the subject is empty (crypto/x509 marshalSANs).
        return x509.subject_alt_names(self.dns, self.emails, self.ips, self.uris, critical=not self.subject)


def creation_names(f: Fields, csr: x509.CertRequest | None = None, cn_from_csr: bool = False) -> Names:
    """GenerateCreationBundle's names for the CA paths, whose role allows any name and IP and URI
    SANs, takes no SANs from a CSR and checks nothing of the common name."""
    cn = csr.subject.first(x509.OID_COMMON_NAME) if csr is not None and cn_from_csr else ""
    cn = cn or f["common_name"]
    serial = f["serial_number"] or (csr.subject.first(x509.OID_SERIAL_NUMBER) if csr is not None else "")
    dns, emails = [], []
    if cn and not f["exclude_cn_from_sans"]:
        if "@" in cn:
            emails.append(cn)
        elif _WILD_HOSTNAME.match(_ascii(cn)):
            dns.append(_ascii(cn))  # a common name that is no DNS name stays out of the SANs
    if f.given("alt_names"):
        for name in sorted({n.strip() for n in f["alt_names"].split(",") if n.strip()}):
            if "@" in name:
                emails.append(name)
            elif _WILD_HOSTNAME.match(_ascii(name)):
                dns.append(_ascii(name))
            else:
                raise VaultError(
                    400, f"subject alternate name {name} is not a valid DNS name and cannot be included as a SAN"
                )
    for ip in f["ip_sans"]:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise VaultError(400, f'the value "{ip}" is not a valid IP address') from None
    for uri in f["uri_sans"]:
        try:
            urllib.parse.urlsplit(uri)
        except ValueError:
            raise VaultError(400, f'the provided URI Subject Alternative Name "{uri}" is not a valid URI') from None
    subject = [(short, v) for short, field in _SUBJECT for v in dict.fromkeys(f[field])]
    subject += [("CN", cn)] if cn else []
    subject += [("serialNumber", serial)] if serial else []
    # strutil.RemoveDuplicates: deduplicated and sorted.
    return Names(subject, sorted(set(dns)), sorted(set(emails)), list(f["ip_sans"]), list(f["uri_sans"]))


def _rfc3339nano(moment: datetime) -> str:
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def validity(
    f: Fields, ttls: tuple[int, int], signer: x509.Certificate | None, behavior: str
) -> tuple[datetime, datetime, list[str]]:
    """(notBefore, notAfter, warnings): issue_common.go GetCertificateNotAfter and
    ApplyIssuerLeafNotAfterBehavior. A ttl above the mount's max lease TTL is cut to it with a
    warning; past the signer's notAfter, `behavior` decides (truncate, permit, or an error)."""
    default_ttl, max_ttl = ttls
    ttl, warnings = f["ttl"], []
    if ttl > 0 and f["not_after"]:
        raise VaultError(
            400, "Either ttl or not_after should be provided. Both should not be provided in the same request."
        )
    ttl = ttl or default_ttl
    if ttl > max_ttl:
        warnings.append(
            f'TTL "{go_duration(ttl)}" is longer than permitted maxTTL "{go_duration(max_ttl)}", so maxTTL is being used'
        )
        ttl = max_ttl
    now = datetime.now(timezone.utc)
    if f["not_after"]:
        try:
            not_after = datetime.fromisoformat(f["not_after"].replace("Z", "+00:00")).astimezone(timezone.utc)
        except ValueError as error:
            raise VaultError(400, str(error)) from None
    else:
        not_after = now + timedelta(seconds=ttl)
    if signer is not None and not_after > signer.not_after:
        if behavior == "truncate":
            not_after = signer.not_after
        elif behavior != "permit":
            raise VaultError(
                400,
                f"cannot satisfy request, as TTL would result in notAfter of {_rfc3339nano(not_after)} that is "
                f"beyond the expiration of the CA certificate at {_rfc3339nano(signer.not_after)}",
            )
    not_before = now - timedelta(seconds=f["not_before_duration"])
    if not_after < not_before:
        raise VaultError(400, "notAfter before notBefore")
    if signer is not None and not_before < signer.not_before:
        raise VaultError(400, "notBefore before signer's notBefore")
    return not_before, not_after, warnings


def ca_key_usage(requested: list[str]) -> tuple[int, list[str]]:
    """certutil.AddKeyUsages for a CA: CertSign and CRLSign, plus DigitalSignature if asked
    (sdk/helper/certutil/types.go); and path_root.go validateCaKeyUsages' complaints."""
    names = [u.strip().lower() for u in requested]
    bits = x509.KEY_USAGES["certsign"] | x509.KEY_USAGES["crlsign"]
    if "digitalsignature" in names:
        bits |= x509.KEY_USAGES["digitalsignature"]
    invalid = [
        f"key usage {u} is only valid for non-Ca certs" if n in x509.KEY_USAGES else f"unrecognized key usage {u}"
        for u, n in zip(requested, names)
        if n not in ("crlsign", "certsign", "digitalsignature")
    ]
    return bits, invalid


def key_params(f: Fields) -> tuple[str, int]:
    """getGenerationParams' key type and size: sdk/helper/certutil/helpers.go DefaultOrValueKeyBits
    and ValidateKeyTypeLength."""
    key_type, bits = f["key_type"], f["key_bits"]
    if key_type == "rsa":
        bits = bits or 2048
        if bits < 2048:
            raise VaultError(400, f"RSA keys < 2048 bits are unsafe and not supported: got {bits}")
        if bits not in (2048, 3072, 4096, 8192):
            raise VaultError(400, f"unsupported bit length for RSA key: {bits}")
    elif key_type == "ec":
        bits = bits or 256
        if bits not in (224, 256, 384, 521):
            raise VaultError(400, f"unsupported bit length for EC key: {bits}")
    elif key_type in ("ed25519", "any"):
        raise unsupported(f"key_type {key_type!r}")
    else:
        raise VaultError(400, f"unknown key_type value: {key_type}")
    return key_type, bits


def signature_digest(signer: x509.PublicKey, signature_bits: int) -> str:
    """The signature's hash: an EC signer's follows its curve (helpers.go
    selectSignatureAlgorithmForECDSA); an RSA signer's is SHA-256 unless signature_bits says 384
    or 512 (certTemplateSetSigAlgo)."""
    if signer.type == "ec":
        return {384: "sha384", 521: "sha512"}.get(signer.bits, "sha256")
    if signature_bits not in (0, 256, 384, 512):
        raise VaultError(400, f"unsupported hash signature algorithm for keyType rsa: {signature_bits}")
    return {384: "sha384", 512: "sha512"}.get(signature_bits, "sha256")
