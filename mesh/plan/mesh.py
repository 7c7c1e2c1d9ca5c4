"""The whole mesh, planned: every cluster's objects, its gateway's source ranges, its
intermediate's issue, the roots, and which cluster holds a remote secret for which.

`plan_mesh` is everything the program decides before it registers a resource. It is given what
the program's entry read from outside (the checked config, the stack's last outputs, the time)
and either returns the plan or raises a ConfigError, so a refused `up` makes nothing anywhere.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ..config import ClusterConfig, ConfigError, MeshConfig
from .cacerts_handover import RELEASED, CacertsStep, LiveCacerts, cacerts_step, previous_steps
from .cert_manager import Issuance, issuance
from .control_plane import (
    istio_cni_manifest,
    istio_manifest,
    istio_revision_tag_manifest,
    istio_system_manifest,
    namespace_manifest,
)
from .gateway import cross_network_gateway_manifest, eastwest_gateway_manifests, source_ranges
from .names import CNI_NAMESPACE
from .reader import reader_manifests
from .remote_secrets import remote_secret_pairs
from .renewal import renewal_generation
from .roots import RootPlan, next_root_state, previous_root_state, root_settings
from .failover import failover_manifests
from .samples import sample_manifests
from .vault import check_root_source

# The stack outputs a plan reads back from the last update.
LAST_OUTPUTS = (
    "rootCertificateAuthority",
    "rootSettings",
    "intermediateRenewal",
    "certificateBackend",
    "certificateIssuer",
    "rootCertificate",
    "cacertsForm",
    "cacertsSecretType",
)


@dataclass(frozen=True)
class ClusterPlan:
    config: ClusterConfig
    intermediate_generation: int
    gateway_sources: tuple[str, ...]
    """Who may reach this cluster's east-west gateway; empty only when open by explicit choice."""
    namespace: dict[str, Any]
    istio: dict[str, Any]
    revision_tag: Optional[dict[str, Any]]
    """The `default` IstioRevisionTag (RevisionBased updates), else None."""
    cni: Optional[tuple[dict[str, Any], dict[str, Any]]]
    gateway: list[dict[str, Any]]
    cross_network_gateway: dict[str, Any]
    reader: list[dict[str, Any]]
    samples: Optional[list[dict[str, Any]]]
    failover: list[dict[str, Any]]
    """The DestinationRules of `mesh:failover` (mesh/plan/failover.py); [] while it is off."""
    issued_intermediate: Optional[Issuance]
    """What cert-manager issues `cacerts` from (backend cert-manager), else None."""
    cacerts: CacertsStep
    """Who owns `cacerts` after this `up`, in which form, and what it hands over
    (`mesh/plan/cacerts_handover.py`)."""


@dataclass(frozen=True)
class MeshPlan:
    config: MeshConfig
    roots: Optional[RootPlan]
    """The roots the stack makes and holds; None when the root is Vault's (`issuer: vault`)."""
    root_state: Optional[dict[str, Any]]
    """The root state this update makes and exports (`next_root_state`); None without roots."""
    clusters: tuple[ClusterPlan, ...]
    remote_secrets: tuple[tuple[str, str], ...]
    """(source, holder) cluster names: `holder` gets a secret to read `source`."""


def _cluster(
    mesh: MeshConfig, cluster: ClusterConfig, sources: tuple[str, ...], generation: int, cacerts: CacertsStep
) -> ClusterPlan:
    return ClusterPlan(
        config=cluster,
        intermediate_generation=generation,
        gateway_sources=sources,
        namespace=istio_system_manifest(cluster.network),
        istio=istio_manifest(mesh, cluster),
        revision_tag=istio_revision_tag_manifest(mesh),
        cni=(namespace_manifest(CNI_NAMESPACE), istio_cni_manifest(mesh)) if mesh.manage_istio_cni else None,
        gateway=eastwest_gateway_manifests(cluster.network, sources, mesh.await_workloads),
        cross_network_gateway=cross_network_gateway_manifest(),
        reader=reader_manifests(mesh.reader_access),
        samples=sample_manifests(cluster.helloworld_version, mesh.await_workloads) if mesh.sample_apps else None,
        failover=failover_manifests(mesh),
        issued_intermediate=issuance(cluster, mesh.certificates)
        if mesh.certificates.backend == "cert-manager"
        else None,
        cacerts=cacerts,
    )


def plan_mesh(
    config: MeshConfig,
    last_outputs: Mapping[str, Any],
    now: datetime.datetime,
    live: Optional[Mapping[str, LiveCacerts]] = None,
) -> MeshPlan:
    """The plan, or a ConfigError: an open gateway, a root step out of order or too early, a
    changed root setting. `last_outputs` holds the stack's LAST_OUTPUTS (absent on a new stack);
    `live` each reachable cluster's `cacerts` as it is (`cacerts_handover.LiveCacerts`)."""
    sources = {c.name: source_ranges(config, c) for c in config.clusters}
    certificates = config.certificates
    check_root_source(dict(last_outputs), certificates.issuer, certificates.vault)
    previous_cacerts = previous_steps(last_outputs, tuple(c.name for c in config.clusters))
    steps = {
        name: cacerts_step(step, certificates.backend, (live or {}).get(name), name)
        for name, step in previous_cacerts.items()
    }
    _check_rotation_form(certificates.root_rotation, steps)
    roots: Optional[RootPlan] = None
    root_state: Optional[dict[str, Any]] = None
    if certificates.issuer != "vault":
        roots = RootPlan.of(certificates)
        previous = previous_root_state(last_outputs.get("rootCertificateAuthority"), last_outputs.get("rootSettings"))
        root_state = next_root_state(
            previous, roots, root_settings(certificates), now, certificates.root_rotation_wait_hours
        )
    renewal = last_outputs.get("intermediateRenewal") or {}
    early = certificates.intermediate_early_renewal_hours
    clusters = tuple(
        _cluster(config, c, sources[c.name], renewal_generation(renewal.get(c.name), early, now), steps[c.name])
        for c in config.clusters
    )
    pairs = tuple((source.name, holder.name) for source, holder in remote_secret_pairs(config.clusters))
    return MeshPlan(config, roots, root_state, clusters, pairs)


def _check_rotation_form(phase: Optional[str], steps: Mapping[str, CacertsStep]) -> None:
    """A root rotation reaches every `cacerts` the program writes: Istio's four files, or the
    `tls` form of a Secret taken back from cert-manager (the lab's istiod takes both through every
    phase: tests/integration/test_lab_root_rotation.py, test_lab_cert_manager_backend.py). Not
    one that is being released: the program writes nothing into it in that `up`."""
    released = sorted(name for name, step in steps.items() if step.form == RELEASED)
    if phase is not None and released:
        raise ConfigError(
            f"config mesh:certificates.rootRotation: {phase!r} is not accepted while cacerts on {', '.join(released)} "
            "is being released by cert-manager: this `up` writes nothing into it, so those clusters would miss the "
            "step; run `up` once without rootRotation to finish the switch back to pulumi-tls, then rotate"
        )
