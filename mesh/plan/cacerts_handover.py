"""Who owns each cluster's `cacerts`, in which form, as `certificates.backend` changes: the Secret
is handed between the program and cert-manager in place, never deleted (deleted, it would be
missing until written anew, and an istiod starting then would sign with a root of its own).

The forms (the stack output `cacertsForm`, per cluster):

| form           | owner        | keys                                  |
| `istio`        | the program  | Istio's four files                    |
| `cert-manager` | cert-manager | tls.crt, tls.key, ca.crt              |
| `released`     | nobody       | cert-manager's last ones, unrenewed   |
| `tls`          | the program  | tls.crt, tls.key, ca.crt (ours)       |

The Secret's type never changes (immutable: a new one would replace, i.e. delete, the Secret), so
it is recorded beside the form (`cacertsSecretType`): Opaque when the program made the Secret,
kubernetes.io/tls when cert-manager did; cert-manager writes its keys into either. The lab found
this: cert-manager had written into the program's Opaque Secret, and a take-over as
kubernetes.io/tls was refused ("field is immutable").

- pulumi-tls to cert-manager (`istio` or `tls` to `cert-manager`): cert-manager writes its keys into
  the existing Secret; once its Certificate is Ready the program applies its Secret without data
  (its own type: a new type would replace the Secret), so its keys go, and keeps it when the next
  `up` forgets the resource.
- cert-manager to pulumi-tls takes two `up`s. The first (`released`) removes the Issuer and the
  Certificate and leaves `cacerts` alone: while the Certificate exists, cert-manager rewrites a
  Secret that no longer matches it, so the program cannot take the keys over in the same `up`
  (its deletes come last). istiod keeps signing with cert-manager's last intermediate, under the
  same root. The second `up` (`tls`) takes the Secret over: its type stays kubernetes.io/tls
  (immutable) and cert-manager's keys cannot be dropped by the program's apply (another field
  manager's), so the program writes its own values into the `tls.*` keys, which istiod reads
  first anyway; no key of another form is left to win over them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

ISTIO, CERT_MANAGER, RELEASED, TLS = "istio", "cert-manager", "released", "tls"
FORMS = (ISTIO, CERT_MANAGER, RELEASED, TLS)
PROGRAMS = (ISTIO, TLS)
"""The forms of a `cacerts` the program writes."""
OPAQUE, KUBERNETES_TLS = "Opaque", "kubernetes.io/tls"


@dataclass(frozen=True)
class CacertsStep:
    """One cluster's `cacerts` after this `up`."""

    form: str
    secret_type: str = OPAQUE
    """The Secret's type, as whoever made it first made it."""
    hand_over: Optional[str] = None
    """The program's form (`istio`, `tls`) whose Secret cert-manager takes over in this `up`."""


def previous_steps(last_outputs: Mapping[str, Any], clusters: tuple[str, ...]) -> dict[str, Optional[CacertsStep]]:
    """Each cluster's form and Secret type after the last `up` (None: the cluster is new). Stacks
    older than these outputs: every cluster with a renewal of ours had the four files in an
    Opaque Secret; with backend cert-manager, every cluster had cert-manager's in its own."""
    forms, types = last_outputs.get("cacertsForm"), last_outputs.get("cacertsSecretType") or {}
    if isinstance(forms, Mapping):
        return {
            name: CacertsStep(forms[name], types.get(name, OPAQUE if forms[name] == ISTIO else KUBERNETES_TLS))
            if name in forms
            else None
            for name in clusters
        }
    renewal = last_outputs.get("intermediateRenewal") or {}
    was_cert_manager = last_outputs.get("certificateBackend") == "cert-manager"
    return {
        name: CacertsStep(ISTIO)
        if name in renewal
        else (CacertsStep(CERT_MANAGER, KUBERNETES_TLS) if was_cert_manager else None)
        for name in clusters
    }


def cacerts_step(previous: Optional[CacertsStep], backend: str) -> CacertsStep:
    """What this `up` does with one cluster's `cacerts` (the table above)."""
    if previous is None:
        return CacertsStep(CERT_MANAGER, KUBERNETES_TLS) if backend == "cert-manager" else CacertsStep(ISTIO)
    kept = previous.secret_type
    if backend == "cert-manager":
        return CacertsStep(CERT_MANAGER, kept, previous.form if previous.form in PROGRAMS else None)
    if previous.form == CERT_MANAGER:
        return CacertsStep(RELEASED, kept)
    if previous.form in (RELEASED, TLS):
        return CacertsStep(TLS, kept)
    return CacertsStep(ISTIO, kept)


RELEASED_WARNING = (
    "cluster {cluster}: cacerts is released by cert-manager in this `up` (its Certificate and Issuer go) and "
    "taken over by the program in the next one; until then istiod keeps signing with cert-manager's last "
    "intermediate, which nobody renews: run `up` again"
)
