"""The Pulumi program's entry: everything read from outside, then the plan, then the resources.

`__main__.py` runs `main` under `pulumi up`; the lab and the integration tests run the same
function as an Automation API inline program. Only here does the program read the stack's
config, its own last outputs, the clock, and whether each cluster answers; the plan
(`mesh/plan/`) and the components (`mesh/*.py`) are given what they need.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from typing import Any, Optional
from urllib.parse import urlparse

import pulumi
from pulumi.runtime.sync_await import _sync_await

from . import config, operator_watch
from .mesh import Mesh, MeshArgs
from .plan.mesh import LAST_OUTPUTS, MeshPlan, plan_mesh


def main() -> None:
    plan, reachable = checked_plan_and_clients()
    build(plan)
    if reachable and not pulumi.runtime.is_dry_run():
        # While the engine applies the resources: an operator's refusal of the version, at once.
        pulumi.run(lambda: operator_watch.watch(plan.config, reachable))


def checked_plan() -> MeshPlan:
    return checked_plan_and_clients()[0]


def checked_plan_and_clients() -> tuple[MeshPlan, dict[str, Any]]:
    """Read the config, the stack's last outputs and the clock, and plan; or refuse, before any
    resource is registered (the read of the stack's own outputs is a read: it makes nothing).
    Also: a Kubernetes client for each cluster this machine reaches."""
    try:
        settings = stack_config()
        check_secrets_are_secret(settings)
        unreachable_servers = {c.name: unreachable(c.admin_server) for c in settings.clusters if c.admin_server}
        warn_about_addresses(settings, unreachable_servers)
        reachable = reachable_clients(settings, unreachable_servers)
        check_sail_operators(settings, reachable)
        check_failover_rules(settings, reachable)
        # cacerts are read only where cert-manager has or had a hand in them: this backend (checked
        # before the stack's outputs are read), or the last one.
        clients = reachable if cert_manager_involved(settings, {}) else {}
        check_prerequisites(settings, clients)
        check_vault_mount(settings)
        warn_about_checkpoints(os.environ.get("PULUMI_SKIP_CHECKPOINTS", ""), pulumi.runtime.is_dry_run())
        now = datetime.datetime.now(datetime.timezone.utc)
        last = own_last_outputs()
        if not clients and cert_manager_involved(settings, last):
            clients = reachable
        plan = plan_mesh(settings, last, now, live_cacerts(settings, clients))
        warn_about_released_cacerts(plan)
        warn_about_vault_root(settings, now)
        return plan, reachable
    except config.ConfigError as error:
        # Pulumi prints a RunError as its message alone, without a traceback.
        raise pulumi.RunError(str(error)) from None


def build(plan: MeshPlan) -> Mesh:
    """The mesh's resources and the stack's outputs, from a plan."""
    mesh = Mesh("mesh", MeshArgs(plan))
    for key, value in mesh.outputs().items():
        pulumi.export(key, value)
    return mesh


def stack_config() -> config.MeshConfig:
    """The running stack's `mesh:` configuration, checked."""
    return config.parse(config.mesh_keys(pulumi.runtime.config.CONFIG.get(), pulumi.get_project()))


def check_secrets_are_secret(settings: config.MeshConfig) -> None:
    """A Vault token given in plain text sits readable in the stack file (and its repository):
    refused, naming the command that stores it encrypted. Pulumi marks the whole `mesh:certificates`
    key secret when any value under it is."""
    if settings.certificates.vault.token is not None and not pulumi.runtime.is_config_secret("mesh:certificates"):
        raise config.ConfigError(
            "config mesh:certificates.vault.token: given in plain text, so it is readable in the stack file; "
            "expected a secret: pulumi config set --secret --path mesh:certificates.vault.token <token>"
        )


def own_last_outputs() -> dict[str, Any]:
    """The stack's own outputs from its last update (LAST_OUTPUTS), read now (not as Outputs):
    plans that may refuse need them before anything is registered. Nothing on a new stack."""
    stack = pulumi.StackReference(
        f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}",
        # Where it was read before the read moved here: inside the Mesh component.
        opts=pulumi.ResourceOptions(aliases=[pulumi.Alias(parent=pulumi.create_urn("mesh", "istio-mesh:mesh:Mesh"))]),
    )
    last = {}
    for key in LAST_OUTPUTS:
        details = _sync_await(stack.get_output_details(key))
        value = details.value if details.value is not None else details.secret_value
        if value is not None:
            last[key] = value
    return last


def unreachable(url: str, timeout: float = 3.0) -> Optional[str]:
    """Why this machine cannot open a connection to `url`'s host and port, or None if it can."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "", parsed.port or 443), timeout=timeout):
            return None
    except OSError as error:
        return str(error) or type(error).__name__


def _is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warn_about_addresses(settings: config.MeshConfig, unreachable_servers: dict[str, Optional[str]]) -> None:
    """Say what the engine would not: a cluster this machine cannot reach, a loopback URL."""
    for cluster in settings.clusters:
        reason = unreachable_servers.get(cluster.name)
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


SKIPPED_CHECKPOINTS = (
    "PULUMI_SKIP_CHECKPOINTS is set: the engine saves this stack's state only when `up` ends. If this `up` is "
    "killed before then, what it made is missing from the state: the reader token secrets it created stay on "
    "the clusters, valid and untracked, and the next `up` fails with server-side apply conflicts on the "
    "secrets it made. Unset it for this program (docs/operations.md, docs/benchmark.md)"
)


def warn_about_checkpoints(setting: str, preview: bool) -> None:
    """Say what the engine would not: this program does not survive a lost state. A killed `up`
    with the engine's checkpoints converges on the next `up`; one without them does not (the lab
    test kills both and reruns them). The setting is read as Pulumi reads its booleans."""
    if not preview and (setting == "1" or setting.lower() == "true"):
        pulumi.log.warn(SKIPPED_CHECKPOINTS)


def warn_about_released_cacerts(plan: MeshPlan) -> None:
    """A switch from cert-manager back to pulumi-tls takes two `up`s: say so after the first."""
    from .plan.cacerts_handover import RELEASED, RELEASED_WARNING

    for cluster in plan.clusters:
        if cluster.cacerts.form == RELEASED:
            pulumi.log.warn(RELEASED_WARNING.format(cluster=cluster.config.name))


def warn_about_vault_root(settings: config.MeshConfig, now: datetime.datetime) -> None:
    """With a Vault root, say when it expires before the intermediates would (`root_expiry_warning`)."""
    certificates = settings.certificates
    if certificates.issuer == "vault":
        from .plan.vault import root_expiry_warning

        warning = root_expiry_warning(certificates.vault, certificates.intermediate_validity_hours, now)
        if warning:
            pulumi.log.warn(warning)


def cert_manager_involved(settings: config.MeshConfig, last: dict[str, Any]) -> bool:
    """cert-manager has a hand in some `cacerts`: this backend, the last one, or a form of its."""
    forms = (last.get("cacertsForm") or {}).values()
    backends = (settings.certificates.backend, last.get("certificateBackend"))
    return "cert-manager" in backends or any(form != "istio" for form in forms)


def reachable_clients(settings: config.MeshConfig, unreachable_servers: dict[str, Optional[str]]) -> dict[str, Any]:
    """A Kubernetes client for each cluster this machine reaches (the others were warned about)."""
    # Imported only here: the Kubernetes client costs import time on every run.
    from .verify.clients import connect

    return {c.name: connect(c, request_timeout=15) for c in settings.clusters if not unreachable_servers.get(c.name)}


def live_cacerts(settings: config.MeshConfig, clients: dict[str, Any]) -> dict[str, Any]:
    """Each reachable cluster's `cacerts` as it is, where cert-manager has or had a hand in it
    (`clients`: `cert_manager_involved`): whether the Secret exists, its type, whether it is
    owned by a Certificate, whether that Certificate exists. The handover plans from these facts,
    not from outputs alone (`mesh/plan/cacerts_handover.py`)."""
    if not clients:
        return {}
    import kubernetes

    found = {}
    for cluster in settings.clusters:
        if cluster.name not in clients:
            continue
        try:
            found[cluster.name] = _live_cacerts(kubernetes, clients[cluster.name])
        except kubernetes.client.exceptions.ApiException as error:
            raise config.ConfigError(
                f"cluster {cluster.name} (context {cluster.context}): reading istio-system/cacerts and its Certificate "
                f"answered {error.status} {error.reason}; a switch of certificate backend plans from them, so nothing "
                "was changed: give the context read access to Secrets and cert-manager Certificates in istio-system"
            ) from None
    return found


def _live_cacerts(kubernetes: Any, client: Any) -> Any:
    from .plan.cacerts_handover import LiveCacerts
    from .plan.cert_manager import API_VERSION, CACERTS
    from .plan.names import ISTIO_NAMESPACE

    try:
        secret = kubernetes.client.CoreV1Api(client).read_namespaced_secret(CACERTS, ISTIO_NAMESPACE)
    except kubernetes.client.exceptions.ApiException as error:
        if error.status != 404:
            raise
        return LiveCacerts(None)
    group, version = API_VERSION.split("/")
    try:
        kubernetes.client.CustomObjectsApi(client).get_namespaced_custom_object(
            group, version, ISTIO_NAMESPACE, "certificates", CACERTS
        )
        certificate = True
    except kubernetes.client.exceptions.ApiException as error:
        if error.status != 404:  # no such Certificate, or no cert-manager at all
            raise
        certificate = False
    owners = secret.metadata.owner_references or []
    return LiveCacerts(secret.type, any(o.kind == "Certificate" for o in owners), certificate)


def check_sail_operators(settings: config.MeshConfig, clients: dict[str, Any]) -> None:
    """`mesh:istioVersion` and `mesh:updateStrategy` against the Sail operator of every cluster
    this machine reaches: its `Istio` (and, when ours, `IstioCNI`) CRD must exist and list the
    version in its enum (what the API server would refuse the resource for, on create or on
    update); a resource the operator already refused the version for, and a running `Istio` of the
    other strategy, are refused too. All before anything is made anywhere; a cluster out of reach
    was warned about already and cannot be checked."""
    import json

    import kubernetes

    from .plan import operator_versions
    from .plan.control_plane import update_strategy_refusal

    kinds = ["Istio"] + (["IstioCNI"] if settings.manage_istio_cni else [])
    found: dict[str, dict[str, Any]] = {}
    for cluster in settings.clusters:
        if cluster.name not in clients:
            continue
        definitions = kubernetes.client.ApiextensionsV1Api(clients[cluster.name])
        found[cluster.name] = {}
        for kind in kinds:
            name = operator_versions.CRDS[kind]
            try:
                # Raw JSON: the Istio CRD's schema is large, and the client's models are slow to build.
                answer = definitions.read_custom_resource_definition(name, _preload_content=False)
                found[cluster.name][name] = json.loads(answer.data)
            except kubernetes.client.exceptions.ApiException as error:
                if error.status != 404:
                    raise config.ConfigError(
                        f"cluster {cluster.name} (context {cluster.context}): reading CRD {name} answered "
                        f"{error.status} {error.reason}; {operator_versions.VERSION_KEY} is checked against it, so "
                        "nothing was changed: give the context read access to CustomResourceDefinitions"
                    ) from None
                found[cluster.name][name] = None
    message = operator_versions.refusal(
        settings.istio_version, operator_versions.version_problems(settings.istio_version, kinds, found)
    )
    if message:
        raise config.ConfigError(message)
    # Listed, but refused already by an operator that reconciled it (an end-of-life version).
    try:
        objects = operator_watch.read(settings, clients)
    except kubernetes.client.exceptions.ApiException as error:
        raise config.ConfigError(
            f"reading the Istio and IstioCNI resources answered {error.status} {error.reason}; "
            f"{operator_versions.VERSION_KEY} is checked against what the operator said of them, so nothing was "
            "changed: give the context read access to sailoperator.io resources"
        ) from None
    refused = operator_watch.refusals(operator_watch.verdicts(settings, objects))
    if refused:
        raise config.ConfigError(operator_versions.refused_at_reconcile(settings.istio_version, refused))
    message = update_strategy_refusal(settings, {c: obj for (c, kind), obj in objects.items() if kind == "Istio"})
    if message:
        raise config.ConfigError(message)


def check_failover_rules(settings: config.MeshConfig, clients: dict[str, Any]) -> None:
    """`mesh:failover.services` against the DestinationRules already on every cluster this machine
    reaches: one that would keep a failover rule from taking effect (mesh/plan/failover.py,
    `clashes`) is refused before anything is made anywhere, naming the cluster and the rule."""
    if not settings.failover.services:
        return
    import kubernetes

    from .plan.failover import NETWORKING_API_VERSION, clashes

    group, version = NETWORKING_API_VERSION.split("/")
    problems = []
    for cluster in settings.clusters:
        if cluster.name not in clients:
            continue
        api = kubernetes.client.CustomObjectsApi(clients[cluster.name])
        try:
            rules = api.list_cluster_custom_object(group, version, "destinationrules")["items"]
        except kubernetes.client.exceptions.ApiException as error:
            if error.status == 404:  # no Istio CRDs yet: no rule either
                continue
            raise config.ConfigError(
                f"cluster {cluster.name} (context {cluster.context}): listing DestinationRules answered "
                f"{error.status} {error.reason}; mesh:failover.services is checked against them, so nothing was "
                "changed: give the context read access to networking.istio.io DestinationRules"
            ) from None
        problems += [f"on cluster {cluster.name}, {clash}" for clash in clashes(settings, rules)]
    if problems:
        raise config.ConfigError(
            "config mesh:failover.services: a failover rule would not take effect: "
            + "; ".join(problems)
            + ". Nothing was changed. Accepted: leave the Service out of mesh:failover.services; or delete that "
            "rule; or, in the Service's namespace, drop its top-level trafficPolicy (its subsets are merged with "
            "the failover rule's)"
        )


def check_prerequisites(settings: config.MeshConfig, clients: dict[str, Any]) -> None:
    """With `certificates.backend: cert-manager`, cert-manager must be installed on every cluster
    this machine reaches (`clients`; its CRDs; like the Sail operator, it is the cluster's, not
    ours): refused before anything is made anywhere, naming each cluster that lacks it. A cluster
    out of reach was warned about already and cannot be checked."""
    if settings.certificates.backend != "cert-manager":
        return
    import kubernetes

    from .plan.cert_manager import REQUIRED_CRDS

    problems = []
    for cluster in settings.clusters:
        if cluster.name not in clients:
            continue
        definitions = kubernetes.client.ApiextensionsV1Api(clients[cluster.name])
        missing = []
        for name in REQUIRED_CRDS:
            try:
                definitions.read_custom_resource_definition(name)
            except kubernetes.client.exceptions.ApiException as error:
                if error.status != 404:
                    problems.append(
                        f"cluster {cluster.name}: reading CRD {name} answered {error.status} {error.reason}"
                    )
                    break
                missing.append(name)
        if missing:
            problems.append(f"cluster {cluster.name} (context {cluster.context}) has no CRD {', '.join(missing)}")
    if problems:
        raise config.ConfigError(
            "config mesh:certificates.backend: 'cert-manager' needs cert-manager installed on every cluster, and "
            + "; ".join(problems)
            + ". Install cert-manager there first (as the Sail operator), or set certificates.backend: pulumi-tls"
        )


def check_vault_mount(settings: config.MeshConfig, timeout: float = 10.0) -> None:
    """With `certificates.issuer: vault`, read the mount's chain (Vault's unauthenticated
    `<mount>/ca_chain`) and refuse, before anything changes, a chain that does not end at the
    pinned root (`plan.vault.check_chain`). Vault out of this machine's reach is said, not
    refused: cert-manager on the clusters may reach what the machine running `up` cannot."""
    certificates = settings.certificates
    if certificates.issuer != "vault":
        return
    import ssl
    import urllib.error
    import urllib.request

    from .plan.vault import chain_url, check_chain

    vault, url = certificates.vault, chain_url(certificates.vault)
    context = ssl.create_default_context(cadata=vault.ca_bundle) if vault.ca_bundle else ssl.create_default_context()
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as answer:
            chain = answer.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        raise config.ConfigError(
            f"config mesh:certificates.vault.path: {vault.path!r}: Vault answered {error.code} {error.reason} to "
            f"{url}; expected the path of an existing PKI mount's sign-intermediate endpoint"
        ) from None
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise config.ConfigError(
                f"config mesh:certificates.vault.caBundle: Vault's serving certificate at {vault.server} does not "
                f"verify against {'it' if vault.ca_bundle else 'the system CAs (caBundle unset)'} ({reason.verify_message}); "
                "expected the PEM of the CA that signed it: cert-manager on each cluster would refuse it the same way"
            ) from None
        pulumi.log.warn(
            f"Vault at {vault.server} is unreachable from here ({reason}): the mount's chain is not checked against "
            "certificates.vault.rootCertificate; cert-manager on each cluster must reach it to issue the intermediates"
        )
        return
    check_chain(vault, chain)
