"""The whole multi-primary, multi-network mesh: one root CA, every cluster, and the remote
secrets that connect each cluster to every other one across their providers.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
from typing import Any, Optional
from urllib.parse import urlparse

import pulumi

from . import gateway, kube
from pulumi.runtime.sync_await import _sync_await

from .certificate_authority import (
    MeshRoots,
    RootPlan,
    next_root_state,
    previous_root_state,
    renewal_generation,
    root_settings,
)
from .cluster import MeshCluster, cluster_provider
from .config import MeshConfig
from .remote_secret import remote_kubeconfig, remote_secret_manifest, remote_secret_name, remote_secret_pairs


def unreachable(url: str, timeout: float = 3.0) -> Optional[str]:
    """Why this machine cannot open a connection to `url`'s host and port, or None if it can."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "", parsed.port or 443), timeout=timeout):
            return None
    except OSError as error:
        return str(error) or type(error).__name__


def _last_output(stack: pulumi.StackReference, key: str) -> Any:
    """One of a stack's outputs, now (not as an Output): plans that may refuse need it before
    they register anything."""
    details = _sync_await(stack.get_output_details(key))
    return details.value if details.value is not None else details.secret_value


def _is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Mesh(pulumi.ComponentResource):
    """Build it with a checked `MeshConfig`; `outputs()` is what the stack exports."""

    def __init__(self, name: str, config: MeshConfig, opts: pulumi.ResourceOptions | None = None):
        # Plans that can refuse the config run before the first resource is registered.
        gateway_sources = {c.name: gateway.source_ranges(config, c) for c in config.clusters}
        super().__init__("istio-mesh:mesh:Mesh", name, None, opts)
        self.config = config
        for cluster in config.clusters:
            reason = unreachable(cluster.admin_server) if cluster.admin_server else None
            if reason:
                # pulumi-kubernetes then plans from the last known state without a word;
                # say it, so that a preview in a pipeline is not mistaken for a live one.
                pulumi.log.warn(
                    f"cluster {cluster.name}: its API server {cluster.admin_server} (context {cluster.context}) is "
                    f"unreachable from here ({reason}); the plan for it comes from the stack's last known state, "
                    "not from the live cluster, and `up` cannot change it until it is reachable"
                )
            if _is_loopback(cluster.api_server_url):
                pulumi.log.warn(
                    f"cluster {cluster.name}: apiServerUrl {cluster.api_server_url} is a loopback address; "
                    "only clusters on this same machine can use the remote secret made from it"
                )
        # The stack's own last outputs: its roots (generations, rotation phase, the settings
        # each was made with) and its intermediates' renewal state. Read and planned here, before
        # any provider, key or cluster object is registered, so that a refusal (a step out of
        # order, too early, a changed root setting) leaves every cluster and key untouched.
        own_stack = pulumi.StackReference(
            f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}",
            opts=pulumi.ResourceOptions(parent=self),
        )
        last = {key: _last_output(own_stack, key)
                for key in ("rootCertificateAuthority", "rootSettings", "intermediateRenewal")}
        now = datetime.datetime.now(datetime.timezone.utc)
        certificates = config.certificates
        root_state = next_root_state(
            previous_root_state(last["rootCertificateAuthority"], last["rootSettings"]),
            RootPlan.of(certificates), root_settings(certificates), now, certificates.root_rotation_wait_hours,
        )
        early = certificates.intermediate_early_renewal_hours
        generations = {c.name: renewal_generation((last["intermediateRenewal"] or {}).get(c.name), early, now)
                       for c in config.clusters}
        self.roots = MeshRoots(f"{name}-root-ca", certificates, root_state, pulumi.ResourceOptions(parent=self))
        self.clusters: dict[str, MeshCluster] = {}
        for cluster in config.clusters:
            provider = cluster_provider(cluster, pulumi.ResourceOptions(parent=self))
            generation = generations[cluster.name]
            self.clusters[cluster.name] = MeshCluster(
                config,
                cluster,
                self.roots,
                gateway_sources[cluster.name],
                generation,
                pulumi.ResourceOptions(parent=self, providers=[provider]),
            )
        self.remote_secrets: dict[str, list[str]] = {c.name: [] for c in config.clusters}
        for source, holder in remote_secret_pairs(config.clusters):
            self._remote_secret(source.name, holder.name)
        self.register_outputs({"mesh_id": config.mesh_id})

    def _remote_secret(self, source_name: str, holder_name: str) -> None:
        """On `holder`, the secret through which its istiod reads `source`."""
        source = self.clusters[source_name]
        holder = self.clusters[holder_name]
        cluster_name = source.config.cluster_name
        server = source.config.api_server_url
        kubeconfig = pulumi.Output.all(source.reader.ca_data, source.reader.token).apply(
            lambda values: remote_kubeconfig(cluster_name, server, values[0], values[1])
        )
        kube.create(
            holder_name,
            remote_secret_manifest(cluster_name),
            pulumi.ResourceOptions(parent=holder, depends_on=[holder.control_plane.namespace]),
            overrides={"stringData": pulumi.Output.secret(kubeconfig).apply(lambda text: {cluster_name: text})},
        )
        self.remote_secrets[holder_name].append(remote_secret_name(cluster_name))

    def outputs(self) -> dict[str, Any]:
        """Stack outputs for other infrastructure; nothing secret in plain form."""
        return {
            "meshId": self.config.mesh_id,
            # Every root the mesh trusts: one, or two during a root rotation (old first).
            "rootCertificate": self.roots.trust_bundle,
            "rootCertificateAuthority": self.roots.state,
            "intermediateRenewal": {name: cluster.ca.renewal for name, cluster in self.clusters.items()},
            "clusters": {
                name: {
                    "clusterName": cluster.config.cluster_name,
                    "network": cluster.config.network,
                    "gatewayAddress": cluster.gateway.address,
                    "remoteSecrets": sorted(self.remote_secrets[name]),
                    "readerTokenSecret": cluster.reader.token_secret_name,
                }
                for name, cluster in self.clusters.items()
            },
        }
