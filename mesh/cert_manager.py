"""One cluster's intermediate CA issued by cert-manager: the issuer's Secret and objects, the
Issuer and the Certificate whose Secret is `cacerts`, as resources (planned in
`mesh/plan/cert_manager.py`, the Vault issuer's in `mesh/plan/vault.py`).

cert-manager, not the program, owns `cacerts` in this mode: it writes and renews the Secret, and
`up` only waits for the Certificate to be Ready. With the CA issuer the root stays the stack's
own (pulumi-tls, protected) and its key is handed to the cluster in a secret Output; with Vault
the root stays in Vault and the program hands over at most the Vault token (a secret Output).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi

from . import kube
from .plan.cert_manager import Issuance


@dataclass(frozen=True)
class IssuedIntermediate:
    """What cert-manager issues a cluster's intermediate from."""

    issuance: Issuance
    secret_data: Optional[pulumi.Input[dict[str, Any]]]
    """The issuer's Secret's data (`issuance.holds`: the root's certificate and key, or the Vault
    token), a secret Output; None when the issuer has no Secret."""
    hands_over: Optional[dict[str, Any]] = None
    """The program's own `cacerts` manifest (backend pulumi-tls until now), handed over in this
    `up`, not deleted; None when there is none."""


@dataclass(frozen=True)
class CertManagerIntermediateArgs:
    issued: IssuedIntermediate
    namespace: pulumi.Resource
    """istio-system, which every object here lives in."""
    ready_timeout_seconds: int


class CertManagerIntermediate(pulumi.ComponentResource):
    """The issuer and the Certificate on one cluster; `certificate` turns Ready once cert-manager
    has written `cacerts`."""

    certificate: pulumi.CustomResource

    def __init__(self, name: str, args: CertManagerIntermediateArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("istio-mesh:pki:CertManagerIntermediate", name, None, opts)
        issuance = args.issued.issuance
        ready = pulumi.CustomTimeouts(create=f"{args.ready_timeout_seconds}s", update=f"{args.ready_timeout_seconds}s")
        needed: list[pulumi.Resource] = [args.namespace]
        if issuance.secret is not None:
            data = pulumi.Output.secret(args.issued.secret_data)
            needed = [kube.create(name, issuance.secret, self._after(needed), overrides={"stringData": data})]
        for manifest in issuance.objects:
            needed = [*needed, kube.create(name, manifest, self._after([args.namespace]))]
        issuer = kube.create(name, issuance.issuer, self._after(needed, ready))
        self.certificate = kube.create(name, issuance.certificate, self._after([issuer], ready))
        self.register_outputs({})

    def _after(
        self, needed: list[pulumi.Resource], timeouts: Optional[pulumi.CustomTimeouts] = None
    ) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, depends_on=needed, custom_timeouts=timeouts)
