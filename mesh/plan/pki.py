"""The certificate profiles of the mesh's CAs, as Istio's tools/certs make them, and the
`cacerts` data istiod reads.

Profiles follow Istio's `tools/certs/common.mk`: the root is `O=Istio, CN=Root CA`; each
intermediate is `O=Istio, CN=Intermediate CA, L=<cluster>`, a CA with the SAN
`istiod.istio-system.svc`. Both carry keyUsage digitalSignature, nonRepudiation,
keyEncipherment, keyCertSign. Private keys are Pulumi secrets; the root is protected.

Path length: Istio's intermediates carry `pathlen:0` so that no CA below them is trusted. The
tls provider cannot write a zero path length (it sets Go's MaxPathLen without MaxPathLenZero,
which Go reads as "unset"; hashicorp/terraform-provider-tls#296), so the same guarantee is put
one level up: the root carries `pathlen:1`, which admits exactly one CA (the intermediate)
between the root and a workload certificate. A CA certificate issued by an intermediate fails
verification either way; the lab tests check that with openssl.
"""

from __future__ import annotations

from typing import Optional

ORGANIZATION = "Istio"
ROOT_COMMON_NAME = "Root CA"
INTERMEDIATE_COMMON_NAME = "Intermediate CA"
ISTIOD_SAN = "istiod.istio-system.svc"
# keyUsage of both profiles; "content_commitment" is the provider's name for nonRepudiation.
CA_USES = ("digital_signature", "content_commitment", "key_encipherment", "cert_signing")

# One CA (the cluster's intermediate) may stand between the root and a workload certificate.
ROOT_PATH_LENGTH = 1

CACERTS_KEYS = ("ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem")


def pem_text(text: str) -> str:
    """PEM text ending in a newline, so that concatenated PEMs stay PEM."""
    return text if text.endswith("\n") else text + "\n"


def cacerts_data(
    ca_cert: str, ca_key: str, trusted_roots: str, signing_root: Optional[str] = None, form: str = "istio"
) -> dict[str, str]:
    """The four files istiod reads from the `cacerts` secret.

    `root-cert.pem` holds every root the mesh trusts (two during a root rotation); the chain is
    the intermediate followed by the root that signed it (`signing_root`, the only root when
    there is one). In the `tls` form (a Secret taken back from cert-manager) istiod reads
    `tls.crt`, `tls.key` and `ca.crt`, and makes the chain itself: `tls.crt` then `ca.crt`
    (pilot/pkg/bootstrap/istio_ca.go, detectSigningCABundleAndCRL).
    """
    if form == "tls":
        return {"tls.crt": pem_text(ca_cert), "tls.key": pem_text(ca_key), "ca.crt": pem_text(trusted_roots)}
    return {
        "ca-cert.pem": pem_text(ca_cert),
        "ca-key.pem": pem_text(ca_key),
        "root-cert.pem": pem_text(trusted_roots),
        "cert-chain.pem": pem_text(ca_cert) + pem_text(signing_root if signing_root is not None else trusted_roots),
    }
