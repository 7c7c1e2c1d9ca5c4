"""Per-cluster certificates and keys, made with the openssl CLI.

The openssl CLI rather than the `cryptography` package keeps the lab on the
standard library (plus PyYAML). ECDSA P-256 keys: generated instantly, and every
party here (Go, Python's ssl, kubectl) accepts them.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
_DAYS = "3650"


@dataclass(frozen=True)
class _CAFiles:
    """A folder whose CA (`ca.crt`, `ca.key`) signs the rest of it."""

    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"


@dataclass(frozen=True)
class ClusterPKI(_CAFiles):
    """Files of one cluster's PKI. One CA signs both the serving and the client
    certificate, as kubeadm does, so `ca` is also what tokens' ca.crt carries."""

    @property
    def server_cert(self) -> Path:
        return self.dir / "apiserver.crt"

    @property
    def server_key(self) -> Path:
        return self.dir / "apiserver.key"

    @property
    def admin_cert(self) -> Path:
        return self.dir / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.dir / "admin.key"

    @property
    def kubelet_client_cert(self) -> Path:
        """How the API server proves itself to the node's kubelet API (exec, logs, port-forward)."""
        return self.dir / "apiserver-kubelet-client.crt"

    @property
    def kubelet_client_key(self) -> Path:
        return self.dir / "apiserver-kubelet-client.key"

    @property
    def kubelet_cert(self) -> Path:
        """The node's kubelet API serving certificate (127.0.0.1, where the API server calls it)."""
        return self.dir / "kubelet.crt"

    @property
    def kubelet_key(self) -> Path:
        return self.dir / "kubelet.key"

    @property
    def sa_key(self) -> Path:
        """Service-account signing key."""
        return self.dir / "sa.key"

    @property
    def sa_pub(self) -> Path:
        """Its public half, for verifying tokens (the apiserver will not derive it)."""
        return self.dir / "sa.pub"


@dataclass(frozen=True)
class ServingPKI(_CAFiles):
    """A CA of its own and one serving certificate from it, for a lab server that is not an API
    server (the Vault stand-in): clients trust `ca_cert`."""

    @property
    def cert(self) -> Path:
        return self.dir / "server.crt"

    @property
    def key(self) -> Path:
        return self.dir / "server.key"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _ca(cert: Path, key: Path, subject: str) -> None:
    _openssl(
        "req",
        "-x509",
        *_EC,
        "-keyout",
        str(key),
        "-out",
        str(cert),
        "-days",
        _DAYS,
        "-subj",
        subject,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )


def _leaf(ca_cert: Path, ca_key: Path, cert: Path, key: Path, subject: str, *exts: str) -> None:
    _openssl(
        "req",
        "-x509",
        *_EC,
        "-keyout",
        str(key),
        "-out",
        str(cert),
        "-days",
        _DAYS,
        "-CA",
        str(ca_cert),
        "-CAkey",
        str(ca_key),
        "-subj",
        subject,
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-addext",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        *(a for e in exts for a in ("-addext", e)),
    )


def create(dir: Path, cluster: str) -> ClusterPKI:
    """Make (or reuse, if already complete) the PKI of `cluster` in `dir`."""
    pki = ClusterPKI(dir)
    if pki.sa_pub.exists():  # written last: its presence means the set is complete
        return pki
    dir.mkdir(parents=True, exist_ok=True)
    _ca(pki.ca_cert, pki.ca_key, f"/CN=mesh-lab-{cluster}-ca")
    _leaf(
        pki.ca_cert,
        pki.ca_key,
        pki.server_cert,
        pki.server_key,
        "/CN=kube-apiserver",
        "extendedKeyUsage=serverAuth",
        # 10.0.0.1 and the kubernetes.* names are the in-cluster identity
        # (first IP of --service-cluster-ip-range); 127.0.0.1/localhost the lab's.
        "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local",
    )
    # O=system:masters: the group RBAC binds to cluster-admin out of the box.
    _leaf(
        pki.ca_cert,
        pki.ca_key,
        pki.admin_cert,
        pki.admin_key,
        "/O=system:masters/CN=mesh-lab-admin",
        "extendedKeyUsage=clientAuth",
    )
    _leaf(
        pki.ca_cert,
        pki.ca_key,
        pki.kubelet_client_cert,
        pki.kubelet_client_key,
        "/CN=kube-apiserver-kubelet-client",
        "extendedKeyUsage=clientAuth",
    )
    _leaf(
        pki.ca_cert,
        pki.ca_key,
        pki.kubelet_cert,
        pki.kubelet_key,
        f"/CN=lab-node-{cluster}",
        "extendedKeyUsage=serverAuth",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
    )
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", str(pki.sa_key))
    _openssl("pkey", "-in", str(pki.sa_key), "-pubout", "-out", str(pki.sa_pub))
    return pki


def create_serving(dir: Path, name: str, subject_alt_names: str) -> ServingPKI:
    """Make (or reuse, if already complete) a CA named after `name` and a serving certificate
    from it for `subject_alt_names` (openssl's form, e.g. "IP:127.0.0.1,DNS:localhost")."""
    pki = ServingPKI(dir)
    if pki.cert.exists():  # written last (openssl writes the key first)
        return pki
    dir.mkdir(parents=True, exist_ok=True)
    _ca(pki.ca_cert, pki.ca_key, f"/CN=mesh-lab-{name}-ca")
    _leaf(
        pki.ca_cert,
        pki.ca_key,
        pki.cert,
        pki.key,
        f"/CN={name}",
        "extendedKeyUsage=serverAuth",
        f"subjectAltName={subject_alt_names}",
    )
    return pki
