"""Which Istio versions each cluster's Sail operator accepts: the `spec.version` enum of the
`Istio` and `IstioCNI` CRDs installed with it (each operator release lists its own), read from the
clusters by the program (mesh/program.py) and checked here, before anything changes.

The CRD's enum is what the API server enforces on create; it does not say which versions the
operator has since marked end-of-life (it refuses those at reconcile, and `up` waits on that:
mesh/plan/control_plane.py)."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

SAIL_GROUP = "sailoperator.io"
# The CRDs of the kinds the program makes, by kind.
CRDS = {"Istio": f"istios.{SAIL_GROUP}", "IstioCNI": f"istiocnis.{SAIL_GROUP}"}
VERSION_KEY = "mesh:istioVersion"


def accepted_versions(crd: Mapping[str, Any]) -> Optional[tuple[str, ...]]:
    """The enum of `spec.version` in the CRD's served v1 schema (None: the CRD sets no enum)."""
    for version in crd.get("spec", {}).get("versions", []):
        if version.get("name") != "v1" or not version.get("served", True):
            continue
        spec = version.get("schema", {}).get("openAPIV3Schema", {}).get("properties", {}).get("spec", {})
        enum = spec.get("properties", {}).get("version", {}).get("enum")
        return tuple(enum) if enum is not None else None
    return None


def version_problems(
    version: str, kinds: Sequence[str], crds: Mapping[str, Mapping[str, Optional[Mapping[str, Any]]]]
) -> list[str]:
    """What each cluster's operator says to `version` for each of `kinds`: `crds` is cluster ->
    CRD name -> the CRD as read (None when the cluster has none)."""
    problems = []
    for cluster, found in crds.items():
        for kind in kinds:
            name = CRDS[kind]
            crd = found.get(name)
            if crd is None:
                problems.append(
                    f"cluster {cluster} has no CRD {name}: install the Sail operator (OpenShift Service Mesh 3) "
                    "there first"
                )
                continue
            accepted = accepted_versions(crd)
            if accepted is not None and version not in accepted:
                problems.append(
                    f"the Sail operator on cluster {cluster} does not accept {version!r} for {kind} "
                    f"(its CRD's versions, newest first: {', '.join(accepted[:12])}"
                    f"{', ...' if len(accepted) > 12 else ''})"
                )
    return problems


def refusal(version: str, problems: Sequence[str]) -> Optional[str]:
    """The message that stops the run, or None."""
    if not problems:
        return None
    return (
        f"config {VERSION_KEY}: {version!r}: "
        + "; ".join(problems)
        + ". Nothing was changed on any cluster: set mesh:istioVersion to a version every cluster's operator "
        "lists, or upgrade the operator first"
    )


ACCEPTED = "accepted"


def reconcile_verdict(obj: Optional[Mapping[str, Any]], version: str) -> Optional[str]:
    """What the operator has said about `version` on one `Istio` or `IstioCNI` (`obj` as read):
    ACCEPTED (reconciled at its current generation), the operator's message when it refused the
    version itself (a Reconciled False condition that names it: an end-of-life version), or None
    (not reconciled yet at this version, or failed for another reason, not the version's)."""
    if not obj or (obj.get("spec") or {}).get("version") != version:
        return None
    status = obj.get("status") or {}
    if status.get("observedGeneration") != (obj.get("metadata") or {}).get("generation"):
        return None
    reconciled = next((c for c in status.get("conditions") or [] if c.get("type") == "Reconciled"), {})
    if reconciled.get("status") == "True":
        return ACCEPTED
    message = reconciled.get("message") or ""
    if reconciled.get("status") == "False" and f'"{version}"' in message:
        return message
    return None


def refused_at_reconcile(version: str, refusals: Sequence[tuple[str, str, str]]) -> str:
    """The message for versions the operator refused at reconcile: (cluster, kind, its message)."""
    said = "; ".join(
        f"the Sail operator on cluster {cluster} refused it for {kind}: {message}"
        for cluster, kind, message in refusals
    )
    return (
        f"config {VERSION_KEY}: {version!r}: {said}. The CRD lets this version in, but the operator does not "
        "install it, and istiod keeps running the version it last installed: set mesh:istioVersion to a version "
        "the operator supports"
    )
