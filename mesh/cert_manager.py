"""One cluster's intermediate CA issued by cert-manager: the root's Secret, the CA Issuer and
the Certificate whose Secret is `cacerts`, as resources (planned in `mesh/plan/cert_manager.py`).

cert-manager, not the program, owns `cacerts` in this mode: it writes and renews the Secret, and
`up` only waits for the Certificate to be Ready. The root stays the stack's own (pulumi-tls,
protected); its key is handed to the cluster in a secret Output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi

from . import kube
from .plan.cert_manager import issuer_manifest, root_secret_manifest


@dataclass(frozen=True)
class IssuedIntermediate:
    """What cert-manager issues a cluster's intermediate from."""

    root_certificate_pem: pulumi.Input[str]
    root_private_key_pem: pulumi.Input[str]
    """The signing root's key (a secret Output)."""
    certificate: dict
    """The intermediate's Certificate (`plan.cert_manager.intermediate_certificate_manifest`)."""
    hands_over: bool = False
    """The program's own `cacerts` (backend pulumi-tls until now) is handed over, not deleted."""


@dataclass(frozen=True)
class CertManagerIntermediateArgs:
    issued: IssuedIntermediate
    namespace: pulumi.Resource
    """istio-system, which every object here lives in."""
    ready_timeout_seconds: int


class CertManagerIntermediate(pulumi.ComponentResource):
    """Root Secret, Issuer and Certificate on one cluster; `certificate` turns Ready once
    cert-manager has written `cacerts`."""

    certificate: pulumi.CustomResource

    def __init__(self, name: str, args: CertManagerIntermediateArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("istio-mesh:pki:CertManagerIntermediate", name, None, opts)
        issued = args.issued
        ready = pulumi.CustomTimeouts(create=f"{args.ready_timeout_seconds}s", update=f"{args.ready_timeout_seconds}s")
        root = kube.create(
            name,
            root_secret_manifest(),
            pulumi.ResourceOptions(parent=self, depends_on=[args.namespace]),
            overrides={
                "stringData": pulumi.Output.secret(
                    pulumi.Output.all(issued.root_certificate_pem, issued.root_private_key_pem).apply(
                        lambda pems: {"tls.crt": pems[0], "tls.key": pems[1]}
                    )
                )
            },
        )
        issuer = kube.create(
            name, issuer_manifest(), pulumi.ResourceOptions(parent=self, depends_on=[root], custom_timeouts=ready)
        )
        self.certificate = kube.create(
            name, issued.certificate, pulumi.ResourceOptions(parent=self, depends_on=[issuer], custom_timeouts=ready)
        )
        self.register_outputs({})
