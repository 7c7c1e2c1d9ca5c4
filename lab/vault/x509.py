"""Keys, CSRs and certificates for the lab's Vault stand-in (lab/vault/server.py), made with the
openssl CLI, and the little DER the stand-in must read and write itself.

openssl generates every key, makes every CSR and signs every certificate (`openssl req`,
`openssl ca`), as lab/clusters/pki.py does; the lab stays on the standard library. Python reads the few
fields Vault's PKI engine decides on (a CSR's subject, key and extensions; a certificate's names,
key identifiers, path length and validity) and encodes the extensions whose exact form Vault takes
from Go's crypto/x509 (key usage, basic constraints, subject alternative names), so they reach
openssl as `DER:` values rather than through its own spelling of them.

`openssl ca` rather than `openssl x509 -req`: only it sets notBefore and notAfter to the second
(`-startdate`/`-enddate`, OpenSSL 3.0 here), as Vault does (now - 30 s, now + ttl). Its subject
comes from `-subj` or the CSR through a policy that keeps every attribute listed in `_POLICY` in
the order given; what it cannot do: keep an attribute outside that list, or a multi-valued RDN
(Go writes `O=a+O=b` for two organizations; openssl ca writes them as two RDNs).
"""

from __future__ import annotations

import base64
import ipaddress
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

# -- DER -----------------------------------------------------------------------------------

SEQUENCE, SET, BOOLEAN, INTEGER, BIT_STRING, OCTET_STRING, OID = 0x30, 0x31, 0x01, 0x02, 0x03, 0x04, 0x06
_STRINGS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be", 0x1C: "utf-32-be"}

OID_SUBJECT_KEY_ID = "2.5.29.14"
OID_KEY_USAGE = "2.5.29.15"
OID_SUBJECT_ALT_NAME = "2.5.29.17"
OID_BASIC_CONSTRAINTS = "2.5.29.19"
OID_AUTHORITY_KEY_ID = "2.5.29.35"
_OID_EXTENSION_REQUEST = "1.2.840.113549.1.9.14"
OID_COMMON_NAME = "2.5.4.3"
OID_SERIAL_NUMBER = "2.5.4.5"
_RSA, _EC, _ED25519 = "1.2.840.113549.1.1.1", "1.2.840.10045.2.1", "1.3.101.112"
_CURVE_BITS = {"1.3.132.0.33": 224, "1.2.840.10045.3.1.7": 256, "1.3.132.0.34": 384, "1.3.132.0.35": 521}
_CURVE_NAMES = {224: "P-224", 256: "P-256", 384: "P-384", 521: "P-521"}

# The subject attributes openssl ca keeps (its policy); the short names are -subj's.
_POLICY = {
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "streetAddress": "street",
    "postalCode": "postalCode",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "commonName": "CN",
    "serialNumber": "serialNumber",
    "emailAddress": "emailAddress",
    "domainComponent": "DC",
    "userId": "UID",
    "title": "title",
    "givenName": "GN",
    "surname": "SN",
    "pseudonym": "pseudonym",
}

# Go's x509.KeyUsage bits (crypto/x509/x509.go), which Vault's key_usage names map to.
KEY_USAGES = {
    "digitalsignature": 1 << 0,
    "contentcommitment": 1 << 1,
    "keyencipherment": 1 << 2,
    "dataencipherment": 1 << 3,
    "keyagreement": 1 << 4,
    "certsign": 1 << 5,
    "crlsign": 1 << 6,
    "encipheronly": 1 << 7,
    "decipheronly": 1 << 8,
}


def _read(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the DER element at pos."""
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, value start, value end, element start) of each element in data[start:end]."""
    found, pos = [], start
    while pos < end:
        tag, value_start, value_end = _read(data, pos)
        found.append((tag, value_start, value_end, pos))
        pos = value_end
    return found


def _oid(raw: bytes) -> str:
    arcs, value = [], 0
    for byte in raw:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def _tlv(tag: int, content: bytes) -> bytes:
    if len(content) < 0x80:
        return bytes([tag, len(content)]) + content
    size = len(content).to_bytes((len(content).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _time(tag: int, raw: bytes) -> datetime:
    text = raw.decode()
    if tag == 0x17:  # UTCTime: two-digit years, 50-99 are 19xx (RFC 5280 4.1.2.5.1)
        text = ("19" if int(text[:2]) >= 50 else "20") + text
    return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Name:
    """A distinguished name: its DER, and its attributes (OID, value) in order."""

    der: bytes
    attributes: tuple[tuple[str, str], ...]

    def first(self, oid: str) -> str:
        return next((value for key, value in self.attributes if key == oid), "")


def _name(data: bytes, start: int, end: int, element_start: int) -> Name:
    attributes = []
    for _, rdn_start, rdn_end, _ in _children(data, start, end):
        for _, atv_start, atv_end, _ in _children(data, rdn_start, rdn_end):
            (_, oid_start, oid_end, _), (tag, value_start, value_end, _) = _children(data, atv_start, atv_end)
            value = data[value_start:value_end].decode(_STRINGS.get(tag, "latin-1"), errors="replace")
            attributes.append((_oid(data[oid_start:oid_end]), value))
    return Name(data[element_start:end], tuple(attributes))


@dataclass(frozen=True)
class Extension:
    oid: str
    critical: bool
    value: bytes  # the extnValue OCTET STRING's content

    def config_line(self) -> str:
        """The extension as an openssl config line that reproduces it byte for byte."""
        return f"{self.oid} = {'critical,' if self.critical else ''}DER:{self.value.hex(':')}"


def _extensions(data: bytes, start: int, end: int) -> tuple[Extension, ...]:
    found = []
    for _, ext_start, ext_end, _ in _children(data, start, end):
        parts = _children(data, ext_start, ext_end)
        critical = len(parts) == 3 and data[parts[1][1]] != 0
        _, value_start, value_end, _ = parts[-1]
        found.append(Extension(_oid(data[parts[0][1] : parts[0][2]]), critical, data[value_start:value_end]))
    return tuple(found)


@dataclass(frozen=True)
class PublicKey:
    spki: bytes  # SubjectPublicKeyInfo DER: what a key and a certificate are matched by
    type: str  # "rsa", "ec", "ed25519" or the algorithm's OID
    bits: int  # RSA modulus or EC curve size; 0 for ed25519


def _public_key(data: bytes, start: int, end: int, element_start: int) -> PublicKey:
    (_, alg_start, alg_end, _), (_, bits_start, bits_end, _) = _children(data, start, end)
    algorithm = _children(data, alg_start, alg_end)
    oid = _oid(data[algorithm[0][1] : algorithm[0][2]])
    spki = data[element_start:end]
    if oid == _RSA:
        key = data[bits_start + 1 : bits_end]  # skip the BIT STRING's unused-bits byte
        (_, seq_start, seq_end) = _read(key, 0)
        _, n_start, n_end, _ = _children(key, seq_start, seq_end)[0]
        return PublicKey(spki, "rsa", int.from_bytes(key[n_start:n_end], "big").bit_length())
    if oid == _EC:
        curve = _oid(data[algorithm[1][1] : algorithm[1][2]]) if len(algorithm) > 1 else ""
        return PublicKey(spki, "ec", _CURVE_BITS.get(curve, 0))
    return PublicKey(spki, "ed25519" if oid == _ED25519 else oid, 0)


def pem_blocks(text: str, kind: str = "CERTIFICATE") -> list[str]:
    """The PEM blocks of `kind` in text, each normalised to end in one newline."""
    pattern = rf"-----BEGIN {kind}-----\s+[A-Za-z0-9+/=\s]+?-----END {kind}-----"
    return [block.strip() + "\n" for block in re.findall(pattern, text)]


def pem_to_der(pem: str) -> bytes:
    body = "".join(line for line in pem.strip().splitlines() if not line.startswith("-----"))
    return base64.b64decode(body)


def der_to_pem(der: bytes, kind: str = "CERTIFICATE") -> str:
    body = base64.b64encode(der).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {kind}-----\n{lines}\n-----END {kind}-----\n"


@dataclass(frozen=True)
class CertRequest:
    pem: str
    subject: Name
    key: PublicKey
    extensions: tuple[Extension, ...]


def parse_csr(pem: str) -> CertRequest:
    der = pem_to_der(pem)
    _, info_start, info_end = _read(der, _read(der, 0)[1])
    parts = _children(der, info_start, info_end)
    subject = _name(der, parts[1][1], parts[1][2], parts[1][3])
    key = _public_key(der, parts[2][1], parts[2][2], parts[2][3])
    extensions: tuple[Extension, ...] = ()
    for tag, attrs_start, attrs_end, _ in parts[3:]:
        if tag != 0xA0:
            continue
        for _, attr_start, attr_end, _ in _children(der, attrs_start, attrs_end):
            (_, oid_start, oid_end, _), (_, set_start, set_end, _) = _children(der, attr_start, attr_end)[:2]
            if _oid(der[oid_start:oid_end]) == _OID_EXTENSION_REQUEST:
                _, seq_start, seq_end, _ = _children(der, set_start, set_end)[0]
                extensions = _extensions(der, seq_start, seq_end)
    return CertRequest(pem, subject, key, extensions)


@dataclass(frozen=True)
class Certificate:
    pem: str
    der: bytes
    serial: int
    issuer: Name
    subject: Name
    not_before: datetime
    not_after: datetime
    key: PublicKey
    extensions: tuple[Extension, ...] = field(default=())

    def extension(self, oid: str) -> Extension | None:
        return next((e for e in self.extensions if e.oid == oid), None)

    @property
    def subject_key_id(self) -> bytes:
        ext = self.extension(OID_SUBJECT_KEY_ID)
        if not ext:
            return b""
        _, start, end = _read(ext.value, 0)
        return ext.value[start:end]

    @property
    def authority_key_id(self) -> bytes:
        ext = self.extension(OID_AUTHORITY_KEY_ID)
        if not ext:
            return b""
        _, start, end = _read(ext.value, 0)
        for tag, value_start, value_end, _ in _children(ext.value, start, end):
            if tag == 0x80:  # [0] keyIdentifier
                return ext.value[value_start:value_end]
        return b""

    @property
    def basic_constraints(self) -> tuple[bool, int]:
        """(is a CA, path length constraint or -1 for none), as Go's IsCA and MaxPathLen."""
        ext = self.extension(OID_BASIC_CONSTRAINTS)
        if not ext:
            return False, -1
        is_ca, path_len = False, -1
        _, start, end = _read(ext.value, 0)
        for tag, value_start, value_end, _ in _children(ext.value, start, end):
            if tag == BOOLEAN:
                is_ca = ext.value[value_start] != 0
            elif tag == INTEGER:
                path_len = int.from_bytes(ext.value[value_start:value_end], "big")
        return is_ca, path_len

    @property
    def self_issued(self) -> bool:
        return self.subject.der == self.issuer.der

    @property
    def serial_hex(self) -> str:
        """The serial as Vault writes it (certutil.GetHexFormatted: lowercase, colon-separated
        bytes of the big-endian value)."""
        raw = self.serial.to_bytes(max(1, (self.serial.bit_length() + 7) // 8), "big")
        return raw.hex(":")


def parse_certificate(pem: str) -> Certificate:
    der = pem_to_der(pem)
    _, tbs_start, tbs_end = _read(der, _read(der, 0)[1])
    parts = _children(der, tbs_start, tbs_end)
    if parts[0][0] == 0xA0:  # [0] version
        parts = parts[1:]
    serial = int.from_bytes(der[parts[0][1] : parts[0][2]], "big")
    validity = _children(der, parts[3][1], parts[3][2])
    extensions: tuple[Extension, ...] = ()
    for tag, start, end, _ in parts[6:]:
        if tag == 0xA3:
            _, seq_start, seq_end = _read(der, start)
            extensions = _extensions(der, seq_start, seq_end)
    return Certificate(
        pem=der_to_pem(der),
        der=der,
        serial=serial,
        issuer=_name(der, parts[2][1], parts[2][2], parts[2][3]),
        not_before=_time(validity[0][0], der[validity[0][1] : validity[0][2]]),
        not_after=_time(validity[1][0], der[validity[1][1] : validity[1][2]]),
        subject=_name(der, parts[4][1], parts[4][2], parts[4][3]),
        key=_public_key(der, parts[5][1], parts[5][2], parts[5][3]),
        extensions=extensions,
    )


# -- the extensions Vault writes, encoded as Go encodes them ---------------------------------


def key_usage(bits: int) -> Extension:
    """Go's marshalKeyUsage: the bits reversed per byte, a minimal BIT STRING, critical."""
    raw = bytes(int(f"{(bits >> shift) & 0xFF:08b}"[::-1], 2) for shift in (0, 8))
    raw = raw[:1] if raw[1] == 0 else raw
    trailing = (raw[-1] & -raw[-1]).bit_length() - 1 if raw[-1] else 8
    return Extension(OID_KEY_USAGE, True, _tlv(BIT_STRING, bytes([trailing]) + raw))


def basic_constraints_ca(max_path_len: int) -> Extension:
    """CA:TRUE, with pathLenConstraint unless max_path_len is -1 (Go's MaxPathLen), critical."""
    content = _tlv(BOOLEAN, b"\xff")
    if max_path_len >= 0:
        content += _tlv(INTEGER, max_path_len.to_bytes(max(1, (max_path_len.bit_length() + 8) // 8), "big"))
    return Extension(OID_BASIC_CONSTRAINTS, True, _tlv(SEQUENCE, content))


def subject_alt_names(
    dns: list[str], emails: list[str], ips: list[str], uris: list[str], critical: bool
) -> Extension | None:
    """Go's marshalSANs order: DNS names, emails, IPs, URIs; critical when the subject is empty."""
    names = (
        [_tlv(0x82, n.encode()) for n in dns]
        + [_tlv(0x81, e.encode()) for e in emails]
        + [_tlv(0x87, ipaddress.ip_address(ip).packed) for ip in ips]
        + [_tlv(0x86, u.encode()) for u in uris]
    )
    return Extension(OID_SUBJECT_ALT_NAME, critical, _tlv(SEQUENCE, b"".join(names))) if names else None


# -- openssl ---------------------------------------------------------------------------------


class OpensslError(RuntimeError):
    pass


def _openssl(*args: str, input: str | None = None, cwd: Path | None = None) -> str:
    done = subprocess.run(["openssl", *args], input=input, capture_output=True, text=True, cwd=cwd)
    if done.returncode != 0:
        raise OpensslError(f"openssl {args[0]}: {done.stderr.strip()[-500:]}")
    return done.stdout


_CONFIG = """\
[ca]
default_ca = standin
[standin]
dir = {dir}
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir
policy = policy_keep
unique_subject = no
email_in_dn = yes
preserve = yes
copy_extensions = none
# PrintableString where it can, else UTF8String: how Go's encoding/asn1 writes names.
string_mask = MASK:0x2002
utf8 = yes
[policy_keep]
{policy}
[req]
distinguished_name = dn
string_mask = MASK:0x2002
utf8 = yes
[dn]
"""


def _config(directory: Path) -> Path:
    path = directory / "openssl.cnf"
    policy = "\n".join(f"{name} = optional" for name in _POLICY)
    path.write_text(_CONFIG.format(dir=directory, policy=policy))
    (directory / "index.txt").write_text("")
    (directory / "serial").write_text("01\n")
    return path


def subject_arg(attributes: list[tuple[str, str]]) -> str:
    """A `-subj` value: `/CN=x/O=y`, with openssl's escapes; `/` alone is the empty name."""

    def escape(value: str) -> str:
        return re.sub(r"([\\/+])", r"\\\1", value)

    return "/" + "/".join(f"{key}={escape(value)}" for key, value in attributes)


def new_key(path: Path, key_type: str, bits: int) -> PublicKey:
    """A new private key at path (mode 0600, as openssl writes keys); its public half."""
    if key_type == "rsa":
        options = ["-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{bits}"]
    else:
        options = ["-algorithm", "EC", "-pkeyopt", f"ec_paramgen_curve:{_CURVE_NAMES[bits]}"]
    _openssl("genpkey", *options, "-out", str(path))
    path.chmod(0o600)
    return public_key(path)


def public_key(key: Path) -> PublicKey:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pub.der"
        _openssl("pkey", "-in", str(key), "-pubout", "-outform", "DER", "-out", str(out))
        der = out.read_bytes()
    _, start, end = _read(der, 0)
    return _public_key(der, start, end, 0)


def make_csr(key: Path, subject: list[tuple[str, str]], extensions: list[Extension]) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(Path(tmp))
        adds = [a for ext in extensions for a in ("-addext", ext.config_line())]
        return _openssl(
            "req", "-new", "-config", str(config), "-utf8", "-key", str(key), "-subj", subject_arg(subject), *adds
        )


def csr_signature_ok(pem: str) -> bool:
    try:
        _openssl("req", "-noout", "-verify", input=pem)
    except OpensslError:
        return False
    return True


def _asn1_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y%m%d%H%M%SZ")


def sign(
    workdir: Path,
    csr_pem: str,
    *,
    signer_key: Path,
    signer_cert_pem: str | None,
    subject: list[tuple[str, str]] | None,
    extensions: list[Extension],
    not_before: datetime,
    not_after: datetime,
    digest: str,
) -> Certificate:
    """The CSR's key certified by the signer (or by itself when signer_cert_pem is None): the
    subject given (None: the CSR's), the extensions given in this order plus the subject and
    authority key identifiers unless given, a random 159-bit serial (as Vault's
    certutil.GenerateSerialNumber), validity to the second."""
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        directory = Path(tmp)
        config = _config(directory)
        (directory / "req.csr").write_text(csr_pem)
        given = {ext.oid for ext in extensions}
        lines = [ext.config_line() for ext in extensions if ext.oid != OID_SUBJECT_ALT_NAME]
        if OID_SUBJECT_KEY_ID not in given:
            lines.append("subjectKeyIdentifier = hash")
        signer = ["-selfsign"]
        if signer_cert_pem is not None:
            (directory / "signer.pem").write_text(signer_cert_pem)
            signer = ["-cert", str(directory / "signer.pem")]
        # Go copies the signer's subject key id; a signer without one gives none.
        if OID_AUTHORITY_KEY_ID not in given and (
            signer_cert_pem is None or parse_certificate(signer_cert_pem).subject_key_id
        ):
            lines.append("authorityKeyIdentifier = keyid:always")
        lines += [ext.config_line() for ext in extensions if ext.oid == OID_SUBJECT_ALT_NAME]
        (directory / "ext.cnf").write_text("\n".join(lines) + "\n")
        args = ["-subj", subject_arg(subject)] if subject is not None else []
        _openssl(
            "ca", "-config", str(config), "-batch", "-notext", "-utf8", "-rand_serial",
            *signer, "-keyfile", str(signer_key), "-in", "req.csr", *args,
            "-startdate", _asn1_time(not_before), "-enddate", _asn1_time(not_after),
            "-md", digest, "-extfile", "ext.cnf", "-out", "cert.pem",
            cwd=directory,
        )  # fmt: skip
        return parse_certificate((directory / "cert.pem").read_text())
