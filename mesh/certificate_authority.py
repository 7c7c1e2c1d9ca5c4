"""The mesh's root CA and one intermediate CA per cluster, as Istio's tools/certs make them.

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

import datetime
from typing import Optional

import pulumi
import pulumi_tls as tls

from .config import CertificateConfig, ConfigError

ORGANIZATION = "Istio"
ROOT_COMMON_NAME = "Root CA"
INTERMEDIATE_COMMON_NAME = "Intermediate CA"
ISTIOD_SAN = "istiod.istio-system.svc"
# keyUsage of both profiles; "content_commitment" is the provider's name for nonRepudiation.
CA_USES = ("digital_signature", "content_commitment", "key_encipherment", "cert_signing")

# One CA (the cluster's intermediate) may stand between the root and a workload certificate.
ROOT_PATH_LENGTH = 1

CACERTS_KEYS = ("ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem")


def cacerts_data(ca_cert: str, ca_key: str, root_cert: str) -> dict[str, str]:
    """The four files istiod reads from the `cacerts` secret; the chain is intermediate, root."""
    def pem(text: str) -> str:
        return text if text.endswith("\n") else text + "\n"

    return {
        "ca-cert.pem": pem(ca_cert),
        "ca-key.pem": pem(ca_key),
        "root-cert.pem": pem(root_cert),
        "cert-chain.pem": pem(ca_cert) + pem(root_cert),
    }


ROOT_ROTATION_HELP = (
    "changing it would replace the mesh's root CA, and every cluster would stop trusting every "
    "other one at once. Keep the root settings as they are; to change the root, follow "
    "'Root rotation' in the README (a second root trusted beside the first, then the old one retired)"
)


def root_settings(settings: CertificateConfig) -> dict[str, object]:
    """The settings that define the root: a change to any of them would replace it."""
    key = {"rsaBits": settings.rsa_bits} if settings.key_algorithm == "RSA" else {"ecdsaCurve": settings.ecdsa_curve}
    return {"keyAlgorithm": settings.key_algorithm, **key, "rootValidityHours": settings.root_validity_hours}


def refuse_root_change(previous: Optional[dict], current: dict) -> dict:
    """Compare with the settings the stack's root was made with (its last `rootSettings` output)."""
    previous = previous or {}
    for key in ("keyAlgorithm", "rsaBits", "ecdsaCurve", "rootValidityHours"):
        if key not in previous:
            continue
        was = previous[key]
        # Stack outputs come back through JSON: 4096 returns as 4096.0.
        was = int(was) if isinstance(was, float) and was.is_integer() else was
        if current.get(key) != was:
            raise ConfigError(
                f"config mesh:certificates.{key}: {current.get(key)!r} differs from {was!r}, the value the "
                f"mesh's root CA was made with; {ROOT_ROTATION_HELP}"
            )
    return current


def renewal_generation(previous: Optional[dict], early_renewal_hours: int, now: datetime.datetime) -> int:
    """Which issue of a cluster's intermediate the stack should hold.

    `previous` is what the last update exported for it ({"generation", "validUntil"}). 0 for a
    new intermediate; one more than before once `now` is inside the renewal window of the
    certificate in place, which makes the next `up` reissue it (the tls provider's own
    early-renewal flag only takes effect on a refresh, so it is not relied on).
    """
    if not previous:
        return 0
    generation = int(previous["generation"])
    valid_until = datetime.datetime.fromisoformat(str(previous["validUntil"]).replace("Z", "+00:00"))
    if now >= valid_until - datetime.timedelta(hours=early_renewal_hours):
        generation += 1
    return generation


def _private_key(name: str, settings: CertificateConfig, opts: pulumi.ResourceOptions, algorithm: pulumi.Input[str]) -> tls.PrivateKey:
    if settings.key_algorithm == "RSA":
        return tls.PrivateKey(name, algorithm=algorithm, rsa_bits=settings.rsa_bits, opts=opts)
    return tls.PrivateKey(name, algorithm=algorithm, ecdsa_curve=settings.ecdsa_curve, opts=opts)


class RootCertificateAuthority(pulumi.ComponentResource):
    """The self-signed root every cluster's intermediate chains to."""

    certificate_pem: pulumi.Output[str]
    private_key_pem: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        settings: CertificateConfig,
        previous_settings: pulumi.Input[Optional[dict]] = None,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        """`previous_settings` are those the existing root was made with; a difference stops
        the program with the root-rotation advice before the root is touched."""
        super().__init__("istio-mesh:pki:RootCertificateAuthority", name, None, opts)
        # Protected: replacing the root would make every cluster distrust every other one
        # at once. A root change is a procedure (README, "Root rotation"), not a diff.
        protected = pulumi.ResourceOptions(parent=self, protect=True)
        self.settings = pulumi.Output.from_input(previous_settings).apply(
            lambda previous: refuse_root_change(previous, root_settings(settings))
        )
        # The key waits for the check, and everything signed by the root waits for the key.
        self.key = _private_key(f"{name}-key", settings, protected, self.settings["keyAlgorithm"])
        self.certificate = tls.SelfSignedCert(
            f"{name}-cert",
            private_key_pem=self.key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(organization=ORGANIZATION, common_name=ROOT_COMMON_NAME),
            validity_period_hours=settings.root_validity_hours,
            is_ca_certificate=True,
            max_path_length=ROOT_PATH_LENGTH,
            set_subject_key_id=True,
            allowed_uses=list(CA_USES),
            opts=protected,
        )
        self.certificate_pem = self.certificate.cert_pem
        self.private_key_pem = pulumi.Output.secret(self.key.private_key_pem)
        self.register_outputs({"certificate_pem": self.certificate_pem})


class IntermediateCertificateAuthority(pulumi.ComponentResource):
    """One cluster's signing CA for istiod, signed by the root."""

    certificate_pem: pulumi.Output[str]
    private_key_pem: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        locality: str,
        root: RootCertificateAuthority,
        settings: CertificateConfig,
        generation: pulumi.Input[int] = 0,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        """A new `generation` reissues the certificate (same key); see `renewal_generation`."""
        super().__init__("istio-mesh:pki:IntermediateCertificateAuthority", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Waits for the root-settings check like every other key, so a refused root change
        # touches no key at all.
        self.key = _private_key(f"{name}-key", settings, child, root.settings["keyAlgorithm"])
        request = tls.CertRequest(
            f"{name}-csr",
            private_key_pem=self.key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(
                organization=ORGANIZATION, common_name=INTERMEDIATE_COMMON_NAME, locality=locality
            ),
            dns_names=[ISTIOD_SAN],
            opts=child,
        )
        self.certificate = tls.LocallySignedCert(
            f"{name}-cert",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=root.private_key_pem,
            ca_cert_pem=root.certificate_pem,
            validity_period_hours=settings.intermediate_validity_hours,
            is_ca_certificate=True,
            set_subject_key_id=True,
            allowed_uses=list(CA_USES),
            opts=pulumi.ResourceOptions(parent=self, replacement_trigger=generation),
        )
        self.certificate_pem = self.certificate.cert_pem
        self.private_key_pem = pulumi.Output.secret(self.key.private_key_pem)
        self.renewal = pulumi.Output.all(generation, self.certificate.validity_end_time).apply(
            lambda values: {"generation": values[0], "validUntil": values[1]}
        )
        self.register_outputs({"certificate_pem": self.certificate_pem})

    def cacerts(self, root: RootCertificateAuthority) -> pulumi.Output[dict]:
        """The `cacerts` data as one secret Output."""
        return pulumi.Output.secret(
            pulumi.Output.all(self.certificate_pem, self.private_key_pem, root.certificate_pem).apply(
                lambda values: cacerts_data(*values)
            )
        )
