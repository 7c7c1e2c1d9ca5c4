"""A cluster's Istio control plane as resources: `istio-system`, `cacerts`, `IstioCNI`, `Istio`,
and (RevisionBased updates) the `default` IstioRevisionTag.

The objects are planned in `mesh/plan/control_plane.py`; here they become resources in order.
Order matters and is encoded as dependencies: istiod decides once, at start, whether a plugged-in
CA exists, so `cacerts` must be in place before the `Istio` resource is created.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

import pulumi

from . import kube
from .cert_manager import CertManagerIntermediate, CertManagerIntermediateArgs, IssuedIntermediate


@dataclass(frozen=True)
class ControlPlaneArgs:
    namespace: dict[str, Any]
    """`istio-system`, with the network label."""
    istio: dict[str, Any]
    cni: Optional[tuple[dict[str, Any], dict[str, Any]]]
    """The `istio-cni` namespace and the `IstioCNI` resource, or None when not ours to manage."""
    cacerts: Union[pulumi.Output[dict], IssuedIntermediate, None]
    """The `cacerts` data (a secret Output) of the program's own Secret (backend pulumi-tls), or
    what cert-manager issues the Secret from (backend cert-manager), or None while cert-manager
    releases it (`mesh/plan/cacerts_handover.py`: nobody's for one `up`)."""
    cacerts_manifest: dict[str, Any]
    """The program's own Secret (`cacerts_manifest(form, type)`), when it has one."""
    ready_timeout_seconds: int
    revision_tag: Optional[dict[str, Any]] = None
    """The `default` IstioRevisionTag (RevisionBased updates), else None."""


class ControlPlane(pulumi.ComponentResource):
    """Namespace, plugged-in CA, CNI and Istio for one cluster; `up` waits for Ready."""

    namespace: pulumi.CustomResource
    istio: pulumi.CustomResource

    def __init__(self, name: str, args: ControlPlaneArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("istio-mesh:mesh:ControlPlane", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ready = pulumi.CustomTimeouts(create=f"{args.ready_timeout_seconds}s", update=f"{args.ready_timeout_seconds}s")
        self.namespace = kube.create(name, args.namespace, child)
        if isinstance(args.cacerts, IssuedIntermediate):
            self.cacerts = CertManagerIntermediate(
                name, CertManagerIntermediateArgs(args.cacerts, self.namespace, args.ready_timeout_seconds), child
            ).certificate
            if args.cacerts.hands_over is not None:
                # The program's own `cacerts` (the same resource, its type kept: a new type would
                # replace the Secret), once cert-manager has written its keys: applied without
                # data, the four files go and the Secret stays; the next `up` drops the resource
                # and keeps the Secret. Deleted instead, it would be missing until cert-manager
                # wrote it anew: an istiod starting then would sign with a root of its own.
                kube.create(
                    name,
                    args.cacerts.hands_over,
                    pulumi.ResourceOptions(parent=self, depends_on=[self.cacerts], retain_on_delete=True),
                )
        elif args.cacerts is not None:
            self.cacerts = kube.create(
                name,
                args.cacerts_manifest,
                pulumi.ResourceOptions(parent=self, depends_on=[self.namespace]),
                overrides={"stringData": args.cacerts},
            )
        else:
            # Released by cert-manager: it stays as it is, and istiod keeps reading it.
            self.cacerts = None
        depends: list[pulumi.Resource] = [self.namespace, *([self.cacerts] if self.cacerts else [])]
        self.cni: Optional[pulumi.CustomResource] = None
        if args.cni:
            cni_namespace = kube.create(name, args.cni[0], child)
            self.cni = kube.create(
                name,
                args.cni[1],
                pulumi.ResourceOptions(parent=self, depends_on=[cni_namespace], custom_timeouts=ready),
            )
            # On OpenShift the Istio resource never turns healthy without CNI.
            depends.append(self.cni)
        self.istio = kube.create(
            name, args.istio, pulumi.ResourceOptions(parent=self, depends_on=depends, custom_timeouts=ready)
        )
        # What workloads wait for before they are made (their injection must answer): the Istio
        # resource, or the revision tag their labels resolve through.
        self.injection: pulumi.CustomResource = self.istio
        if args.revision_tag:
            self.injection = kube.create(
                name,
                args.revision_tag,
                pulumi.ResourceOptions(parent=self, depends_on=[self.istio], custom_timeouts=ready),
            )
        self.register_outputs({})
