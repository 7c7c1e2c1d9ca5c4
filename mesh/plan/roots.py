"""Root rotation, planned: which roots live, which signs, which every cluster trusts, and whether
this update may take the step the config asks for (docs/root-rotation.md).

`next_root_state` is decided before anything is registered, from the stack's last outputs and
the time the program's entry read; a refusal leaves every key and cluster untouched.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Optional

from ..config import CertificateConfig, ConfigError

ROOT_ROTATION_HELP = (
    "changing it in place would replace the mesh's root CA, and every cluster would stop trusting "
    "every other one at once. Keep the root settings as they are; to change the root, rotate it "
    "(docs/root-rotation.md: rootGeneration one higher with rootRotation 'trust', then 'sign', "
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
        return {
            "generation": plan.generation,
            "phase": STEADY,
            "since": stamp,
            "settings": {str(plan.generation): settings},
        }
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


def generation_name(name: str, generation: int) -> str:
    """Resource names per root generation; generation 0 keeps the plain name."""
    return name if generation == 0 else f"{name}-g{generation}"
