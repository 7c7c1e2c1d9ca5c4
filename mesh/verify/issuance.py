"""With `certificates.backend: cert-manager`: each cluster's Issuer can sign and its Certificate
`cacerts` is issued, with cert-manager's own reason when not (a Vault login refused, a mount
missing, a root Secret gone), and when cert-manager renews it next. `up` only waits for both to be
Ready once; afterwards nobody else looks, and an intermediate nobody can renew expires quietly."""

from __future__ import annotations

from typing import Any, Mapping

from kubernetes.client.exceptions import ApiException

from ..config import ClusterConfig, MeshConfig
from ..plan.cert_manager import issuance
from ..plan.names import ISTIO_NAMESPACE
from .results import FAIL, ISSUANCE, RECREATE, SKIP, Result, _not_found, _result, conditions

NOT_CERT_MANAGER = Result(ISSUANCE, "-", "-", SKIP, "certificates.backend is pulumi-tls: `up` issues the intermediates")


def _ready(obj: Mapping[str, Any]) -> tuple[Mapping[str, Any], list[str]]:
    """The Ready condition, and what is wrong with it for the object's current spec."""
    ready = conditions(obj).get("Ready", {})
    said = ": ".join(filter(None, (ready.get("reason"), ready.get("message"))))
    if ready.get("status") != "True":
        return ready, [f"not Ready: {said or 'no Ready condition yet: is cert-manager running?'}"]
    observed, generation = ready.get("observedGeneration"), obj["metadata"].get("generation")
    if observed is not None and observed != generation:
        return ready, [f"cert-manager has not checked generation {generation} yet (observed {observed})"]
    return ready, []


def check_issuance(custom, mesh: MeshConfig, cluster: ClusterConfig) -> list[Result]:
    """The cluster's Issuer and Certificate `cacerts` Ready (cert-manager backend only)."""
    planned = issuance(cluster, mesh.certificates)
    results = []
    for manifest in (planned.issuer, planned.certificate):
        name, kind = manifest["metadata"]["name"], manifest["kind"]
        group, version = manifest["apiVersion"].split("/")
        item = f"{kind} {name}"
        try:
            obj = custom.get_namespaced_custom_object(group, version, ISTIO_NAMESPACE, kind.lower() + "s", name)
        except ApiException as error:
            if not _not_found(error):
                raise
            results.append(Result(ISSUANCE, cluster.name, item, FAIL, f"not found: {RECREATE}"))
            continue
        _, problems = _ready(obj)
        status = obj.get("status") or {}
        if kind == "Certificate":
            good = (
                f"issued, valid until {status.get('notAfter')}, cert-manager renews it at {status.get('renewalTime')}"
            )
        else:
            good = f"Ready ({'Vault ' + manifest['spec']['vault']['server'] if 'vault' in manifest['spec'] else 'CA'})"
        results.append(_result(ISSUANCE, cluster.name, item, problems, good))
    return results
