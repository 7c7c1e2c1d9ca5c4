"""The checked configuration the program works from: frozen, made only by `mesh.config.parse`.

Defaults and accepted values are not here but in the schema (`mesh/config/schema.py`), once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    """Stable identifier of the cluster in this program: resource names, provider identity."""
    kubeconfig: str = field(repr=False)
    """Path of a kubeconfig file, or the kubeconfig document itself (then kept secret; never in a
    repr or a message)."""
    kubeconfig_is_content: bool
    context: str
    cluster_name: str
    """Istio `multiCluster.clusterName`; names the remote secret on the other clusters."""
    network: str
    api_server_url: str
    """The URL the OTHER clusters' istiod use to reach this API server."""
    admin_server: str
    """The server of `context` in the kubeconfig: where this program reaches the cluster."""
    helloworld_version: str
    egress_cidrs: tuple[str, ...]
    """Address ranges this cluster's traffic leaves from; the peers' gateways admit them."""
    vault_auth_path: Optional[str]
    """Vault's Kubernetes auth mount for this cluster (`/v1/auth/...`), with a Vault issuer that
    logs in with `kubernetesRole`; else None."""
    istio_values: dict[str, Any] = field(hash=False)
    """Helm values for this cluster's `Istio` resource (`spec.values`), merged over the mesh's;
    never one the program sets (`mesh/config/istio_values.py`). Read, never changed."""


@dataclass(frozen=True)
class VaultConfig:
    """A Vault PKI mount that signs the intermediates (`certificates.issuer: vault`); every field
    None while the issuer is not Vault."""

    server: Optional[str]
    path: Optional[str]
    """The mount's sign-intermediate path, without `/v1/` (`pki/root/sign-intermediate`)."""
    ca_bundle: Optional[str]
    """PEM of the CA(s) that signed Vault's serving certificate; None: the system's."""
    root_certificate: Optional[str]
    """The root at the top of the mount's chain, pinned: the mesh's one root."""
    token: Optional[str] = field(repr=False)
    """A Vault token allowed to update `path` (a secret; never in a repr or a message)."""
    kubernetes_role: Optional[str]
    """The role of each cluster's Kubernetes auth mount (`vaultAuthPath`) cert-manager logs in as."""
    cert_manager_service_account: str
    """namespace/name of cert-manager's controller: allowed to request the issuer's tokens."""


@dataclass(frozen=True)
class CertificateConfig:
    backend: str
    """Who issues the intermediates (CERTIFICATE_BACKENDS): pulumi-tls, or cert-manager."""
    issuer: str
    """cert-manager's issuer (CERTIFICATE_ISSUERS): a CA issuer from the stack's root, or Vault."""
    vault: VaultConfig
    key_algorithm: str
    rsa_bits: int
    ecdsa_curve: str
    root_validity_hours: int
    intermediate_validity_hours: int
    intermediate_early_renewal_hours: int
    root_generation: int
    """Which root signs: 0 for the first, one more for each rotation."""
    root_rotation: Optional[str]
    """The phase of a root rotation in progress (ROOT_ROTATION_PHASES), None when there is none."""
    root_rotation_wait_hours: int
    """Least time between two phases: every workload certificate is reissued in between."""


@dataclass(frozen=True)
class FailoverConfig:
    """Outlier detection and locality failover for chosen Services (mesh/plan/failover.py); off
    while `services` is empty."""

    services: tuple[str, ...]
    """`<name>.<namespace>` of each Service that gets a DestinationRule on every cluster."""
    mode: str
    """Where requests go while all is healthy (schema.FAILOVER_MODES): every cluster, or their own."""
    consecutive_errors: int
    interval_seconds: int
    base_ejection_seconds: int
    connect_timeout_seconds: int


@dataclass(frozen=True)
class MeshConfig:
    clusters: tuple[ClusterConfig, ...]
    mesh_id: str
    istio_version: str
    update_strategy: str
    istio_values: dict[str, Any] = field(hash=False)
    """Helm values merged into every cluster's `Istio` resource (`spec.values`), under the
    cluster's own and the program's. Read, never changed."""
    manage_istio_cni: bool
    sample_apps: bool
    reader_access: str
    ready_timeout_seconds: int
    await_workloads: bool
    certificates: CertificateConfig
    gateway_extra_source_ranges: tuple[str, ...]
    gateway_allow_open_to_internet: bool
    reader_token_rotation: str
    failover: FailoverConfig
