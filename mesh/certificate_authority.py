"""The mesh's root CAs and one intermediate CA per cluster as resources (pulumi-tls).

Profiles and the `cacerts` data are in `mesh/plan/pki.py`; which roots live, sign and are
trusted (root rotation) in `mesh/plan/roots.py`; when an intermediate is reissued in
`mesh/plan/renewal.py`. Private keys are Pulumi secrets; every root is protected but the one
being retired.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_tls as tls

from .plan.pki import (
    CA_USES,
    INTERMEDIATE_COMMON_NAME,
    ISTIOD_SAN,
    ORGANIZATION,
    ROOT_COMMON_NAME,
    ROOT_PATH_LENGTH,
    cacerts_data,
    pem_text,
)
from .plan.roots import RootPlan, generation_name


def _private_key(name: str, settings: pulumi.Output, opts: pulumi.ResourceOptions) -> tls.PrivateKey:
    """A key made with a root generation's checked settings (an Output: every key waits for the
    root-state check, so a refused config touches no key)."""
    return tls.PrivateKey(
        name,
        algorithm=settings["keyAlgorithm"],
        rsa_bits=settings.apply(lambda s: s.get("rsaBits")),
        ecdsa_curve=settings.apply(lambda s: s.get("ecdsaCurve")),
        opts=opts,
    )


@dataclass(frozen=True)
class RootArgs:
    generation: int
    settings: pulumi.Output
    """The generation's checked root settings (`next_root_state`)."""
    protect: bool = True


class RootCertificateAuthority(pulumi.ComponentResource):
    """One self-signed root (one generation) that cluster intermediates chain to."""

    certificate_pem: pulumi.Output[str]
    private_key_pem: pulumi.Output[str]

    def __init__(self, name: str, args: RootArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("istio-mesh:pki:RootCertificateAuthority", name, None, opts)
        self.generation = args.generation
        self.settings = args.settings
        # Protected: replacing a root would make every cluster distrust every other one at
        # once. Only a root being retired is not (RootPlan.protected).
        child = pulumi.ResourceOptions(parent=self, protect=args.protect)
        self.key = _private_key(f"{name}-key", args.settings, child)
        self.certificate = tls.SelfSignedCert(
            f"{name}-cert",
            private_key_pem=self.key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(organization=ORGANIZATION, common_name=ROOT_COMMON_NAME),
            validity_period_hours=args.settings["rootValidityHours"],
            is_ca_certificate=True,
            max_path_length=ROOT_PATH_LENGTH,
            set_subject_key_id=True,
            allowed_uses=list(CA_USES),
            opts=child,
        )
        self.certificate_pem = self.certificate.cert_pem
        self.private_key_pem = pulumi.Output.secret(self.key.private_key_pem)
        self.register_outputs({"certificate_pem": self.certificate_pem})


class MeshRoots:
    """The mesh's live roots: the one that signs, and the bundle every cluster trusts.

    Not a resource of its own, so that each root keeps the address it had before root rotation
    existed. `state` is the root state this update makes (`next_root_state`), planned and
    checked before anything is registered.
    """

    def __init__(self, name: str, plan: RootPlan, state: dict, opts: pulumi.ResourceOptions):
        self.plan = plan
        self.state = pulumi.Output.from_input(state)
        self.roots = {
            generation: RootCertificateAuthority(
                generation_name(name, generation),
                RootArgs(generation, self.state["settings"][str(generation)], plan.protected(generation)),
                opts,
            )
            for generation in plan.live
        }
        self.signing = self.roots[plan.signing]
        self.trust_bundle: pulumi.Output[str] = pulumi.Output.all(
            *[self.roots[generation].certificate_pem for generation in plan.trusted]
        ).apply(lambda pems: "".join(pem_text(pem) for pem in pems))


@dataclass(frozen=True)
class IntermediateArgs:
    locality: str
    """The cluster's Istio name, the certificate's `L=`."""
    root: RootCertificateAuthority
    """The signing root; the key is made like the root's (algorithm and size)."""
    validity_hours: int
    generation: pulumi.Input[int] = 0
    """A new generation reissues the certificate (same key); see `plan.renewal`."""


class IntermediateCertificateAuthority(pulumi.ComponentResource):
    """One cluster's signing CA for istiod, signed by the mesh's signing root."""

    certificate_pem: pulumi.Output[str]
    private_key_pem: pulumi.Output[str]

    def __init__(self, name: str, args: IntermediateArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("istio-mesh:pki:IntermediateCertificateAuthority", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.root = args.root
        self.key = _private_key(f"{name}-key", args.root.settings, child)
        request = tls.CertRequest(
            f"{name}-csr",
            private_key_pem=self.key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(
                organization=ORGANIZATION, common_name=INTERMEDIATE_COMMON_NAME, locality=args.locality
            ),
            dns_names=[ISTIOD_SAN],
            opts=child,
        )
        self.certificate = tls.LocallySignedCert(
            f"{name}-cert",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=args.root.private_key_pem,
            ca_cert_pem=args.root.certificate_pem,
            validity_period_hours=args.validity_hours,
            is_ca_certificate=True,
            set_subject_key_id=True,
            allowed_uses=list(CA_USES),
            opts=pulumi.ResourceOptions(parent=self, replacement_trigger=args.generation),
        )
        self.certificate_pem = self.certificate.cert_pem
        self.private_key_pem = pulumi.Output.secret(self.key.private_key_pem)
        self.renewal = pulumi.Output.all(args.generation, self.certificate.validity_end_time).apply(
            lambda values: {"generation": values[0], "validUntil": values[1]}
        )
        self.register_outputs({"certificate_pem": self.certificate_pem})

    def cacerts(self, trust_bundle: pulumi.Input[str], form: str) -> pulumi.Output[dict]:
        """The `cacerts` data in `form` as one secret Output: every trusted root in `root-cert.pem`."""
        return pulumi.Output.secret(
            pulumi.Output.all(
                self.certificate_pem, self.private_key_pem, trust_bundle, self.root.certificate_pem
            ).apply(lambda values: cacerts_data(*values, form=form))
        )
