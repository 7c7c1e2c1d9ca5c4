"""Who owns each cluster's `cacerts`, in which form, as `certificates.backend` changes: the Secret
is handed between the program and cert-manager in place, never deleted (deleted, it would be
missing until written anew, and an istiod starting then would sign with a root of its own).

The forms (the stack output `cacertsForm`, per cluster):

| form           | owner        | type              | keys                                  |
| `istio`        | the program  | Opaque            | Istio's four files                    |
| `cert-manager` | cert-manager | kubernetes.io/tls | tls.crt, tls.key, ca.crt              |
| `released`     | nobody       | kubernetes.io/tls | cert-manager's last ones, unrenewed   |
| `tls`          | the program  | kubernetes.io/tls | tls.crt, tls.key, ca.crt (ours)       |

- pulumi-tls to cert-manager (`istio` or `tls` to `cert-manager`): cert-manager writes its keys into
  the existing Secret; once its Certificate is Ready the program applies its Secret without data
  (its own type: a new type would replace the Secret), so its keys go, and keeps it when the next
  `up` forgets the resource.
- cert-manager to pulumi-tls takes two `up`s. The first (`released`) removes the Issuer and the
  Certificate and leaves `cacerts` alone: while the Certificate exists, cert-manager rewrites a
  Secret that no longer matches it, so the program cannot take the keys over in the same `up`
  (its deletes come last). istiod keeps signing with cert-manager's last intermediate, under the
  same root. The second `up` (`tls`) takes the Secret over: its type stays kubernetes.io/tls
  (immutable), so the program writes the `tls.*` form, which istiod reads first anyway; no key of
  the other form is left to win over it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

ISTIO, CERT_MANAGER, RELEASED, TLS = "istio", "cert-manager", "released", "tls"
FORMS = (ISTIO, CERT_MANAGER, RELEASED, TLS)
PROGRAMS = (ISTIO, TLS)
"""The forms of a `cacerts` the program writes."""


@dataclass(frozen=True)
class CacertsStep:
    """One cluster's `cacerts` in this `up`."""

    form: str
    hand_over: Optional[str] = None
    """The program's form (`istio`, `tls`) whose Secret cert-manager takes over in this `up`."""


def previous_forms(last_outputs: Mapping[str, Any], clusters: tuple[str, ...]) -> dict[str, Optional[str]]:
    """Each cluster's form after the last `up` (None: the cluster is new). Stacks older than the
    `cacertsForm` output: every cluster with a renewal of ours had the four files; with backend
    cert-manager, every cluster had cert-manager's."""
    forms = last_outputs.get("cacertsForm")
    if isinstance(forms, Mapping):
        return {name: forms.get(name) for name in clusters}
    renewal = last_outputs.get("intermediateRenewal") or {}
    was_cert_manager = last_outputs.get("certificateBackend") == "cert-manager"
    return {name: ISTIO if name in renewal else (CERT_MANAGER if was_cert_manager else None) for name in clusters}


def cacerts_step(previous: Optional[str], backend: str) -> CacertsStep:
    """What this `up` does with one cluster's `cacerts` (the table above)."""
    if backend == "cert-manager":
        return CacertsStep(CERT_MANAGER, previous if previous in PROGRAMS else None)
    if previous == CERT_MANAGER:
        return CacertsStep(RELEASED)
    if previous in (RELEASED, TLS):
        return CacertsStep(TLS)
    return CacertsStep(ISTIO)


RELEASED_WARNING = (
    "cluster {cluster}: cacerts is released by cert-manager in this `up` (its Certificate and Issuer go) and "
    "taken over by the program in the next one; until then istiod keeps signing with cert-manager's last "
    "intermediate, which nobody renews: run `up` again"
)
