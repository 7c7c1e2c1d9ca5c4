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

from ..config import ConfigError

ISTIO, CERT_MANAGER, RELEASED, TLS = "istio", "cert-manager", "released", "tls"
FORMS = (ISTIO, CERT_MANAGER, RELEASED, TLS)
PROGRAMS = (ISTIO, TLS)
"""The forms of a `cacerts` the program writes."""
OPAQUE, KUBERNETES_TLS = "Opaque", "kubernetes.io/tls"


@dataclass(frozen=True)
class LiveCacerts:
    """What a reachable cluster holds now (read by the program's entry): the facts the outputs
    can only remember, and may remember wrong (a stack older than them; an `up` that failed after
    they were written)."""

    secret_type: Optional[str]
    """The type of `istio-system/cacerts`; None when there is no such Secret."""
    owned_by_certificate: bool = False
    """cert-manager's `--enable-certificate-owner-ref`: the Secret goes with its Certificate."""
    certificate: bool = False
    """cert-manager's Certificate `cacerts` exists (its CRD too)."""


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


def cacerts_step(
    previous: Optional[CacertsStep], backend: str, live: Optional[LiveCacerts] = None, cluster: str = ""
) -> CacertsStep:
    """What this `up` does with one cluster's `cacerts` (the table above). `live` is what the
    cluster holds, None when it is out of reach (then the outputs are all there is): a cluster
    without the Secret is new to it, the Secret's type is the one it has, and a release is only
    over once the Certificate is gone."""
    if live is not None:
        if live.secret_type is None:
            previous = None
        elif previous is None:
            # A Secret the outputs do not know (made by hand, or by an older version).
            form = TLS if live.secret_type == KUBERNETES_TLS else ISTIO
            previous = CacertsStep(CERT_MANAGER if live.certificate else form, live.secret_type)
        else:
            previous = CacertsStep(previous.form, live.secret_type)
        releasing = previous is not None and previous.form in (CERT_MANAGER, RELEASED) and backend != "cert-manager"
        if releasing and live.owned_by_certificate:
            raise ConfigError(
                f"config mesh:certificates.backend: {backend!r} would delete cacerts on cluster {cluster}: it is "
                "owned by cert-manager's Certificate (cert-manager runs with --enable-certificate-owner-ref), and "
                "releasing it deletes the Certificate. Remove the owner reference first (kubectl -n istio-system "
                'patch secret cacerts --type=json -p \'[{"op":"remove","path":"/metadata/ownerReferences"}]\'), '
                "with the flag off, then run `up` again"
            )
        if previous is not None and previous.form == RELEASED and live.certificate and backend != "cert-manager":
            return CacertsStep(RELEASED, previous.secret_type)  # its delete has not happened yet
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
