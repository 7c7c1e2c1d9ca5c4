"""Names, labels and annotations the planned objects share with each other and with `mesh verify`."""

ISTIO_NAMESPACE = "istio-system"
CNI_NAMESPACE = "istio-cni"
NETWORK_LABEL = "topology.istio.io/network"
SAIL_API_VERSION = "sailoperator.io/v1"

# pulumi-kubernetes annotations that replace its default readiness logic.
WAIT_FOR = "pulumi.com/waitFor"
SKIP_AWAIT = "pulumi.com/skipAwait"
# Server-side apply takes the fields another field manager set (rather than failing on a conflict).
PATCH_FORCE = "pulumi.com/patchForce"


def istiod_deployment_name(revision: str) -> str:
    """Sail renders the revision named "default" (an InPlace `Istio` named default) without a
    suffix (the istiod chart's empty `revision`), every other revision as istiod-<revision>."""
    return "istiod" if revision == "default" else f"istiod-{revision}"


def chart_revision(revision: str) -> str:
    """The istiod chart's `revision` value for a Sail revision: empty for "default"."""
    return "" if revision == "default" else revision
