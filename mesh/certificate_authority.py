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
from dataclasses import dataclass
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


def _pem(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def cacerts_data(ca_cert: str, ca_key: str, trusted_roots: str, signing_root: Optional[str] = None) -> dict[str, str]:
    """The four files istiod reads from the `cacerts` secret.

    `root-cert.pem` holds every root the mesh trusts (two during a root rotation); the chain is
    the intermediate followed by the root that signed it (`signing_root`, the only root when
    there is one).
    """
    return {
        "ca-cert.pem": _pem(ca_cert),
        "ca-key.pem": _pem(ca_key),
        "root-cert.pem": _pem(trusted_roots),
        "cert-chain.pem": _pem(ca_cert) + _pem(signing_root if signing_root is not None else trusted_roots),
    }


ROOT_ROTATION_HELP = (
    "changing it in place would replace the mesh's root CA, and every cluster would stop trusting "
    "every other one at once. Keep the root settings as they are; to change the root, rotate it "
    "(README, 'Root rotation': rootGeneration one higher with rootRotation 'trust', then 'sign', "
    "then 'retire', then unset), and give the new settings with the new generation"
)

STEADY = "steady"


def root_settings(settings: CertificateConfig) -> dict[str, object]:
    """The settings that define a root: a change to any of them would replace it."""
    key = {"rsaBits": settings.rsa_bits} if settings.key_algorithm == "RSA" else {"ecdsaCurve": settings.ecdsa_curve}
    return {"keyAlgorithm": settings.key_algorithm, **key, "rootValidityHours": settings.root_validity_hours}


def _plain(value: object) -> object:
    # Stack outputs come back through JSON: 4096 returns as 4096.0.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def refuse_root_change(recorded: dict, current: dict, generation: int) -> None:
    """Compare with the settings root `generation` was made with (`previous_root_state`'s)."""
    for key in ("keyAlgorithm", "rsaBits", "ecdsaCurve", "rootValidityHours"):
        if key in recorded and current.get(key) != recorded[key]:
            raise ConfigError(
                f"config mesh:certificates.{key}: {current.get(key)!r} differs from {recorded[key]!r}, the value "
                f"the mesh's root CA (generation {generation}) was made with; {ROOT_ROTATION_HELP}"
            )


@dataclass(frozen=True)
class RootPlan:
    """Which roots the config asks for: `generation` and the rotation `phase` (None: none).

    | phase  | roots kept       | signs the intermediates | in every root-cert.pem |
    | None   | g                | g                       | g                      |
    | trust  | g-1, g           | g-1                     | g-1, g                 |
    | sign   | g-1, g           | g                       | g-1, g                 |
    | retire | g-1 (unprotected), g | g                   | g                      |
    """

    generation: int
    phase: Optional[str] = None

    @classmethod
    def of(cls, settings: CertificateConfig) -> "RootPlan":
        return cls(settings.root_generation, settings.root_rotation)

    @property
    def live(self) -> tuple[int, ...]:
        return (self.generation - 1, self.generation) if self.phase else (self.generation,)

    @property
    def signing(self) -> int:
        return self.generation - 1 if self.phase == "trust" else self.generation

    @property
    def trusted(self) -> tuple[int, ...]:
        return (self.generation - 1, self.generation) if self.phase in ("trust", "sign") else (self.generation,)

    def protected(self, generation: int) -> bool:
        """Every root is protected, but the one being retired: the next `up` deletes it."""
        return not (self.phase == "retire" and generation == self.generation - 1)

    @property
    def step(self) -> tuple[int, str]:
        return self.generation, self.phase or STEADY


def _describe(step: tuple[int, str]) -> str:
    generation, phase = step
    rotation = "rootRotation unset" if phase == STEADY else f"rootRotation {phase!r}"
    return f"rootGeneration {generation} with {rotation}"


def _next_steps(generation: int, phase: str) -> list[tuple[int, str]]:
    """Where a root rotation may go from (generation, phase): stay, go on, or one step back
    where both roots are still in place."""
    return {
        STEADY: [(generation, STEADY), (generation + 1, "trust")],
        "trust": [(generation, "trust"), (generation, "sign")],
        "sign": [(generation, "sign"), (generation, "retire"), (generation, "trust")],
        "retire": [(generation, "retire"), (generation, STEADY), (generation, "sign")],
    }[phase]


# Going on to these phases waits for every workload certificate to be reissued: after `trust`
# every proxy must hold both roots before any certificate under the new one appears; after
# `sign` every certificate under the old root must be gone before that root stops being trusted.
_WAITS_BEFORE = {("trust", "sign"), ("sign", "retire")}


def previous_root_state(state: Optional[dict], legacy_settings: Optional[dict]) -> Optional[dict]:
    """The stack's last `rootCertificateAuthority` output, normalised; stacks made before root
    rotation existed exported only `rootSettings`, which is generation 0 with no rotation."""
    if not state and legacy_settings:
        state = {"generation": 0, "phase": STEADY, "since": None, "settings": {"0": legacy_settings}}
    if not state:
        return None
    return {
        "generation": int(state["generation"]),
        "phase": state.get("phase") or STEADY,
        "since": state.get("since"),
        "settings": {
            str(int(float(generation))): {key: _plain(value) for key, value in settings.items()}
            for generation, settings in (state.get("settings") or {}).items()
        },
    }


def next_root_state(
    previous: Optional[dict], plan: RootPlan, settings: dict, now: datetime.datetime, wait_hours: int
) -> dict:
    """The root state this update makes, or a ConfigError before any key is touched.

    `previous` is `previous_root_state(...)`; `settings` are the config's root settings, which
    belong to the root of `plan.generation`. The older root of a rotation keeps the settings it
    was made with.
    """
    path = "config mesh:certificates"
    stamp = now.isoformat().replace("+00:00", "Z")
    if previous is None:
        if plan.phase:
            raise ConfigError(
                f"{path}.rootRotation: {plan.phase!r} needs a root to rotate from, and this stack has none "
                "yet; accepted: rootRotation unset (a new stack makes its first root)"
            )
        return {"generation": plan.generation, "phase": STEADY, "since": stamp, "settings": {str(plan.generation): settings}}
    was = (previous["generation"], previous["phase"])
    accepted = _next_steps(*was)
    if plan.step not in accepted:
        raise ConfigError(
            f"{path}.rootGeneration/rootRotation: {_describe(plan.step)} cannot follow the stack's roots "
            f"({_describe(was)}): a root rotation goes trust, sign, retire, then unset, one `up` at a time, "
            f"so that no two clusters ever distrust each other; accepted now: "
            + "; ".join(_describe(step) for step in accepted)
        )
    since = previous["since"] if plan.step == was else stamp
    if plan.step != was and (was[1], plan.step[1]) in _WAITS_BEFORE and previous["since"]:
        began = datetime.datetime.fromisoformat(str(previous["since"]).replace("Z", "+00:00"))
        ready = began + datetime.timedelta(hours=wait_hours)
        if now < ready:
            raise ConfigError(
                f"{path}.rootRotation: {plan.phase!r} is too early; phase {was[1]!r} began at {previous['since']} "
                f"and every workload certificate must be reissued before the next phase "
                f"(rootRotationWaitHours {wait_hours}); accepted: {_describe(was)} until {ready.isoformat()}, "
                f"or {plan.phase!r} from then on"
            )
    recorded = previous["settings"]
    if str(plan.generation) in recorded:
        refuse_root_change(recorded[str(plan.generation)], settings, plan.generation)
    live = {str(g): recorded.get(str(g), settings) for g in plan.live}
    return {"generation": plan.generation, "phase": plan.step[1], "since": since, "settings": live}


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


def generation_name(name: str, generation: int) -> str:
    """Resource names per root generation; generation 0 keeps the plain name."""
    return name if generation == 0 else f"{name}-g{generation}"


class RootCertificateAuthority(pulumi.ComponentResource):
    """One self-signed root (one generation) that cluster intermediates chain to."""

    certificate_pem: pulumi.Output[str]
    private_key_pem: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        generation: int,
        settings: pulumi.Output,
        protect: bool = True,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        """`settings` are the generation's checked root settings (`next_root_state`)."""
        super().__init__("istio-mesh:pki:RootCertificateAuthority", name, None, opts)
        self.generation = generation
        self.settings = settings
        # Protected: replacing a root would make every cluster distrust every other one at
        # once. Only a root being retired is not (RootPlan.protected).
        child = pulumi.ResourceOptions(parent=self, protect=protect)
        self.key = _private_key(f"{name}-key", settings, child)
        self.certificate = tls.SelfSignedCert(
            f"{name}-cert",
            private_key_pem=self.key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(organization=ORGANIZATION, common_name=ROOT_COMMON_NAME),
            validity_period_hours=settings["rootValidityHours"],
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

    def __init__(
        self,
        name: str,
        settings: CertificateConfig,
        state: dict,
        opts: pulumi.ResourceOptions,
    ):
        self.plan = RootPlan.of(settings)
        self.state = pulumi.Output.from_input(state)
        self.roots = {
            generation: RootCertificateAuthority(
                generation_name(name, generation),
                generation,
                self.state["settings"][str(generation)],
                self.plan.protected(generation),
                opts,
            )
            for generation in self.plan.live
        }
        self.signing = self.roots[self.plan.signing]
        self.trust_bundle: pulumi.Output[str] = pulumi.Output.all(
            *[self.roots[generation].certificate_pem for generation in self.plan.trusted]
        ).apply(lambda pems: "".join(_pem(pem) for pem in pems))


class IntermediateCertificateAuthority(pulumi.ComponentResource):
    """One cluster's signing CA for istiod, signed by the mesh's signing root."""

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
        """A new `generation` reissues the certificate (same key); see `renewal_generation`.
        The key is made like its root's (algorithm and size)."""
        super().__init__("istio-mesh:pki:IntermediateCertificateAuthority", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.root = root
        self.key = _private_key(f"{name}-key", root.settings, child)
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

    def cacerts(self, trust_bundle: pulumi.Input[str]) -> pulumi.Output[dict]:
        """The `cacerts` data as one secret Output: every trusted root in `root-cert.pem`."""
        return pulumi.Output.secret(
            pulumi.Output.all(self.certificate_pem, self.private_key_pem, trust_bundle, self.root.certificate_pem).apply(
                lambda values: cacerts_data(*values)
            )
        )
