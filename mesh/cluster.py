"""One cluster of the mesh as resources: its intermediate CA, control plane, east-west gateway,
reader identity and (optionally) sample apps, all through that cluster's own Kubernetes provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from . import kube
from .cert_manager import IssuedIntermediate
from .certificate_authority import IntermediateArgs, IntermediateCertificateAuthority, MeshRoots
from .config import ClusterConfig
from .control_plane import ControlPlane, ControlPlaneArgs
from .gateway import EastWestGateway, EastWestGatewayArgs
from .plan.cacerts_handover import PROGRAMS
from .plan.control_plane import cacerts_manifest
from .plan.mesh import ClusterPlan
from .plan.roots import generation_name
from .plan.vault import TOKEN_KEY
from .reader import RemoteReader, RemoteReaderArgs
from .samples import SampleApps, SampleAppsArgs


def cluster_provider(cluster: ClusterConfig, opts: pulumi.ResourceOptions) -> k8s.Provider:
    """An explicit provider: kubeconfig and context named, and a stable cluster identifier so
    that a changed kubeconfig (a new path, a rotated credential) does not replace every
    resource on the cluster (pulumi-kubernetes#2294)."""
    kubeconfig = pulumi.Output.secret(cluster.kubeconfig) if cluster.kubeconfig_is_content else cluster.kubeconfig
    return k8s.Provider(
        cluster.name,
        kubeconfig=kubeconfig,
        context=cluster.context,
        cluster_identifier=cluster.name,
        # Without it a change of a Secret's data replaces the Secret, and a named Secret is
        # deleted before it is recreated: a renewed `cacerts` or a rotated remote secret
        # would be missing for a moment. Updated in place, neither ever is.
        enable_secret_mutable=True,
        opts=opts,
    )


def _issuer_secret_data(
    holds: Optional[str], roots: Optional[MeshRoots], vault_token: Optional[str]
) -> Optional[pulumi.Output[dict]]:
    """The data of cert-manager's issuer Secret: what `Issuance.holds`."""
    if holds == "root" and roots is not None:
        return pulumi.Output.all(roots.signing.certificate_pem, roots.signing.private_key_pem).apply(
            lambda pems: {"tls.crt": pems[0], "tls.key": pems[1]}
        )
    if holds == "vault-token" and vault_token is not None:
        return pulumi.Output.secret({TOKEN_KEY: vault_token})
    return None


@dataclass(frozen=True)
class ClusterArgs:
    plan: ClusterPlan
    roots: Optional[MeshRoots]
    """The stack's roots; None when the root is Vault's."""
    intermediate_validity_hours: int
    ready_timeout_seconds: int
    reader_token_rotation: str
    vault_token: Optional[str] = field(default=None, repr=False)
    """The Vault token cert-manager signs with (`certificates.vault.token`), kept secret."""


class MeshCluster(pulumi.ComponentResource):
    """Everything the mesh puts on one cluster. Pass the cluster's provider in `opts.providers`."""

    def __init__(self, name: str, args: ClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("istio-mesh:mesh:Cluster", name, None, opts)
        plan, roots, seconds = args.plan, args.roots, args.ready_timeout_seconds
        self.config = plan.config
        self.cacerts_step = step = plan.cacerts
        child = pulumi.ResourceOptions(parent=self)
        self.ca: Optional[IntermediateCertificateAuthority] = None
        issuance = plan.issued_intermediate
        if issuance is not None:
            # cert-manager issues and renews the intermediate on the cluster: from the stack's
            # signing root (CA issuer), or in Vault (the token, if it logs in with one).
            cacerts = IssuedIntermediate(
                issuance,
                _issuer_secret_data(issuance.holds, roots, args.vault_token),
                cacerts_manifest(step.hand_over, step.secret_type) if step.hand_over else None,
            )
        else:
            assert roots is not None  # planned: only a Vault issuer leaves the stack without roots
            # One intermediate per signing root: a root rotation's `sign` phase makes a new one (new
            # key) under the new root, and the one under the old root goes.
            self.ca = IntermediateCertificateAuthority(
                generation_name(f"{name}-intermediate-ca", roots.signing.generation),
                IntermediateArgs(
                    plan.config.cluster_name,
                    roots.signing,
                    args.intermediate_validity_hours,
                    plan.intermediate_generation,
                ),
                child,
            )
            # None while cert-manager releases the Secret: taken over in the next `up`.
            cacerts = self.ca.cacerts(roots.trust_bundle, step.form) if step.form in PROGRAMS else None
        self.control_plane = ControlPlane(
            name,
            ControlPlaneArgs(
                plan.namespace,
                plan.istio,
                plan.cni,
                cacerts,
                cacerts_manifest(step.form, step.secret_type),
                seconds,
                plan.revision_tag,
            ),
            child,
        )
        istio, namespace = self.control_plane.injection, self.control_plane.namespace
        self.gateway = EastWestGateway(
            name, EastWestGatewayArgs(plan.gateway, plan.cross_network_gateway, seconds, namespace, istio), child
        )
        self.reader = RemoteReader(
            name,
            RemoteReaderArgs(plan.reader, args.reader_token_rotation, seconds, self.control_plane.namespace),
            child,
        )
        samples = SampleApps(name, SampleAppsArgs(plan.samples, istio), child) if plan.samples else None
        workloads: list[pulumi.Resource] = [samples] if samples else []
        self.serving: list[pulumi.Resource] = [self.gateway, *workloads]
        """What must run before the other clusters route to this one (their remote secrets for it):
        its east-west gateway and the workloads the stack puts here, each Ready."""
        # The failover rules after Istio (its CRDs' user) and the sample apps (the `sample` namespace).
        after_samples = pulumi.ResourceOptions(parent=self, depends_on=[istio, *workloads])
        for rule in plan.failover:
            kube.create(name, rule, after_samples)
        self.register_outputs({"gateway_address": self.gateway.address})
