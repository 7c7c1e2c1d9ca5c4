"""One cluster of the mesh: its intermediate CA, control plane, east-west gateway, reader
identity and (optionally) sample apps, all through that cluster's own Kubernetes provider.
"""

from __future__ import annotations

from typing import Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from .certificate_authority import IntermediateCertificateAuthority, MeshRoots, generation_name
from .config import ClusterConfig, MeshConfig
from .control_plane import ControlPlane
from .gateway import EastWestGateway
from .reader import RemoteReader
from .samples import SampleApps


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


class MeshCluster(pulumi.ComponentResource):
    """Everything the mesh puts on one cluster. Pass the cluster's provider in `opts.providers`."""

    def __init__(
        self,
        mesh: MeshConfig,
        cluster: ClusterConfig,
        roots: MeshRoots,
        gateway_sources: Sequence[str],
        intermediate_generation: pulumi.Input[int] = 0,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        super().__init__("istio-mesh:mesh:Cluster", cluster.name, None, opts)
        self.config = cluster
        child = pulumi.ResourceOptions(parent=self)
        # One intermediate per signing root: a root rotation's `sign` phase makes a new one (new
        # key) under the new root, and the one under the old root goes.
        self.ca = IntermediateCertificateAuthority(
            generation_name(f"{cluster.name}-intermediate-ca", roots.signing.generation),
            cluster.cluster_name,
            roots.signing,
            mesh.certificates,
            intermediate_generation,
            child,
        )
        self.control_plane = ControlPlane(mesh, cluster, self.ca.cacerts(roots.trust_bundle), child)
        self.gateway = EastWestGateway(mesh, cluster, gateway_sources, [self.control_plane.istio], child)
        self.reader = RemoteReader(mesh, cluster, self.control_plane.namespace, child)
        if mesh.sample_apps:
            SampleApps(mesh, cluster, [self.control_plane.istio], child)
        self.register_outputs({"gateway_address": self.gateway.address})
