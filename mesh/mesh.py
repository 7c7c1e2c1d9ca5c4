"""The whole multi-primary, multi-network mesh as resources: the roots, every cluster, and the
remote secrets that connect each cluster to every other one across their providers.

Everything here follows a `MeshPlan` (`mesh/plan/mesh.py`), made and checked before this
component is constructed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi

from . import kube
from .certificate_authority import MeshRoots
from .cluster import ClusterArgs, MeshCluster, cluster_provider
from .plan.mesh import MeshPlan
from .plan.remote_secrets import remote_kubeconfig, remote_secret_manifest, remote_secret_name


@dataclass(frozen=True)
class MeshArgs:
    plan: MeshPlan


class Mesh(pulumi.ComponentResource):
    """The mesh a `MeshPlan` describes; `outputs()` is what the stack exports."""

    def __init__(self, name: str, args: MeshArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("istio-mesh:mesh:Mesh", name, None, opts)
        plan = args.plan
        config = self.config = plan.config
        # The stack's roots, unless the root is Vault's (then only its pinned certificate is here).
        self.roots: Optional[MeshRoots] = None
        if plan.roots is not None and plan.root_state is not None:
            self.roots = MeshRoots(f"{name}-root-ca", plan.roots, plan.root_state, pulumi.ResourceOptions(parent=self))
        self.clusters: dict[str, MeshCluster] = {}
        for cluster in plan.clusters:
            provider = cluster_provider(cluster.config, pulumi.ResourceOptions(parent=self))
            self.clusters[cluster.config.name] = MeshCluster(
                cluster.config.name,
                ClusterArgs(
                    cluster,
                    self.roots,
                    config.certificates.intermediate_validity_hours,
                    config.ready_timeout_seconds,
                    config.reader_token_rotation,
                    config.certificates.vault.token,
                ),
                pulumi.ResourceOptions(parent=self, providers=[provider]),
            )
        self.remote_secrets: dict[str, list[str]] = {name: [] for name in self.clusters}
        # One kubeconfig per source cluster, the same in the secret on every other cluster:
        # made once, not N-1 times (a mesh of N clusters holds N(N-1) remote secrets).
        data = {name: self._remote_secret_data(cluster) for name, cluster in self.clusters.items()}
        for source, holder in plan.remote_secrets:
            self._remote_secret(source, holder, data[source])
        self.register_outputs({"mesh_id": config.mesh_id})

    @staticmethod
    def _remote_secret_data(source: MeshCluster) -> pulumi.Output[dict]:
        """The data of every remote secret that reads `source`: one key, its kubeconfig (secret)."""
        name, server = source.config.cluster_name, source.config.api_server_url
        return pulumi.Output.secret(
            pulumi.Output.all(source.reader.ca_data, source.reader.token).apply(
                lambda values: {name: remote_kubeconfig(name, server, values[0], values[1])}
            )
        )

    def _remote_secret(self, source_name: str, holder_name: str, data: pulumi.Output[dict]) -> None:
        """On `holder`, the secret through which its istiod reads `source`."""
        holder, source = self.clusters[holder_name], self.clusters[source_name]
        cluster_name = source.config.cluster_name
        # Only once `source` serves (its gateway and workloads Ready) does `holder`'s istiod learn
        # its endpoints: a cluster joining a running mesh is otherwise routed to while its gateway
        # has no route to them yet (seen: requests from the running clusters reset at the new
        # cluster's gateway). On removal the order reverses: the secrets go first.
        kube.create(
            holder_name,
            remote_secret_manifest(cluster_name),
            pulumi.ResourceOptions(parent=holder, depends_on=[holder.control_plane.namespace, *source.serving]),
            overrides={"stringData": data},
        )
        self.remote_secrets[holder_name].append(remote_secret_name(cluster_name))

    def outputs(self) -> dict[str, Any]:
        """Stack outputs for other infrastructure; nothing secret in plain form."""
        certificates = self.config.certificates
        return {
            "meshId": self.config.mesh_id,
            # Every root the mesh trusts: one, or two during a root rotation (old first).
            "rootCertificate": self.roots.trust_bundle if self.roots else certificates.vault.root_certificate,
            **({"rootCertificateAuthority": self.roots.state} if self.roots else {}),
            # Who issues the intermediates; with cert-manager there is no renewal of ours to record.
            "certificateBackend": certificates.backend,
            **({"certificateIssuer": certificates.issuer} if certificates.backend == "cert-manager" else {}),
            # Who owns each cluster's cacerts, in which form (mesh/plan/cacerts_handover.py).
            "cacertsForm": {name: cluster.cacerts_step.form for name, cluster in self.clusters.items()},
            "cacertsSecretType": {name: cluster.cacerts_step.secret_type for name, cluster in self.clusters.items()},
            "intermediateRenewal": {
                name: cluster.ca.renewal for name, cluster in self.clusters.items() if cluster.ca is not None
            },
            "clusters": {
                name: {
                    "clusterName": cluster.config.cluster_name,
                    "network": cluster.config.network,
                    "gatewayAddress": cluster.gateway.address,
                    "remoteSecrets": sorted(self.remote_secrets[name]),
                    "readerTokenSecret": cluster.reader.token_secret_name,
                    # The revision the operator runs istiod as (RevisionBased: it changes with the version).
                    "istioRevision": cluster.control_plane.istio.status.apply(
                        lambda status: (status or {}).get("activeRevisionName")
                    ),
                }
                for name, cluster in self.clusters.items()
            },
        }
