"""Checks that span keys: a value fine on its own but wrong beside another one.

Each section's rule gets the section's checked values (by model field), its path, and its
index in a list; it refuses with the exact key where the offending value is, or returns the
values completed (derived fields, defaults that depend on the position). `REFUSED` lists what is
refused here, for docs/configuration.md (kept equal by tests/test_config_docs.py).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from . import kubeconfig
from .errors import ConfigError, key_path, refused
from .istio_values import OWNED_GLOBALS, PILOT_ENV, PILOT_ENV_REASONS

REFUSED: list[str] = []


def refuses(*what: str):
    """Record `what` a rule refuses, for docs/configuration.md's list."""

    def record(function):
        REFUSED.extend(what)
        return function

    return record


@refuses(
    "a setting of the other key algorithm (`ecdsaCurve` while `keyAlgorithm` is `RSA`, `rsaBits` with `ECDSA`): "
    "it would be ignored, and the root it shapes is protected",
    "`intermediateEarlyRenewalHours` over `intermediateValidityHours`; an intermediate outliving the root",
    "`rootRotation` set while `rootGeneration` is 0 (the first root has nothing to rotate from)",
    '`backend: cert-manager` with `rootRotation` (rotate on `pulumi-tls`: docs/certificates.md, "Switching backends") or with '
    "`intermediateEarlyRenewalHours` equal to `intermediateValidityHours` (cert-manager renews before expiry)",
)
def certificates(values: dict[str, Any], raw: dict[str, Any], path: str, index: Optional[int]) -> dict[str, Any]:
    algorithm = values["key_algorithm"]
    other, ignored = ("ECDSA", "ecdsaCurve") if algorithm == "RSA" else ("RSA", "rsaBits")
    if ignored in raw:
        raise refused(
            key_path(path, ignored),
            raw[ignored],
            f"no {ignored} while keyAlgorithm is {algorithm!r} (the keys would be {algorithm} and it would be "
            f"ignored); set keyAlgorithm: {other} to use it, or remove {ignored}",
        )
    _issuer(values, raw, path)
    intermediate, root = values["intermediate_validity_hours"], values["root_validity_hours"]
    if values["intermediate_early_renewal_hours"] > intermediate:
        raise refused(
            key_path(path, "intermediateEarlyRenewalHours"),
            values["intermediate_early_renewal_hours"],
            f"at most intermediateValidityHours ({intermediate}); equal reissues on every up",
        )
    if intermediate > root:
        raise refused(
            key_path(path, "intermediateValidityHours"),
            intermediate,
            f"at most rootValidityHours ({root}): an intermediate cannot outlive its root",
        )
    phase = values["root_rotation"]
    if values["backend"] == "cert-manager":
        _cert_manager(values, path)
    if phase is not None and values["root_generation"] == 0:
        raise refused(
            key_path(path, "rootGeneration"),
            0,
            f"1 or more while rootRotation is {phase!r}: the generation of the new root (the first root is 0)",
        )
    return values


def _cert_manager(values: dict[str, Any], path: str) -> None:
    if values["root_rotation"] is not None:
        raise refused(
            key_path(path, "rootRotation"),
            values["root_rotation"],
            "no rootRotation with backend 'cert-manager': a rotation needs every cluster to trust the old and the "
            "new root at once, and cert-manager's ca.crt holds only its issuer's one root. With issuer 'ca': set "
            "backend 'pulumi-tls' (two `up`s take cacerts back), rotate there (docs/root-rotation.md), then set "
            "backend 'cert-manager' again; with issuer 'vault' the root is Vault's: a new root is a new stack",
        )
    validity = values["intermediate_validity_hours"]
    if values["intermediate_early_renewal_hours"] >= validity:
        raise refused(
            key_path(path, "intermediateEarlyRenewalHours"),
            values["intermediate_early_renewal_hours"],
            f"less than intermediateValidityHours ({validity}) with backend 'cert-manager': cert-manager renews "
            "that many hours before expiry, and refuses a renewal window as long as the certificate's life "
            "(0: its default, a third of the life)",
        )


# The keys that shape the root the stack makes: none with a Vault root.
ROOT_KEYS = ("rootGeneration", "rootValidityHours", "rootRotationWaitHours")


@refuses(
    "`issuer: vault` without `backend: cert-manager`; `vault` keys while `issuer` is `ca`; a root setting "
    "(`rootGeneration`, `rootValidityHours`, `rootRotationWaitHours`) with `issuer: vault`",
    "`issuer: vault` without `vault.server`, `vault.path` or `vault.rootCertificate`, or without exactly one of "
    "`vault.token` and `vault.kubernetesRole`",
)
def _issuer(values: dict[str, Any], raw: dict[str, Any], path: str) -> None:
    issuer, vault = values["issuer"], values["vault"]
    vault_path = key_path(path, "vault")
    if issuer != "vault":
        given = sorted(raw.get("vault") or {})
        if given:
            raise refused(
                key_path(vault_path, given[0]),
                raw["vault"][given[0]],
                f"no vault keys while issuer is {issuer!r}: they would be ignored; set issuer: vault to use them",
                secret=given[0] == "token",
            )
        return
    if values["backend"] != "cert-manager":
        raise refused(
            key_path(path, "issuer"),
            issuer,
            f"'ca' (the default) while backend is {values['backend']!r}: Vault signs the intermediates through cert-manager; "
            "set backend: cert-manager to use it",
        )
    for key in ROOT_KEYS:
        if key in raw:
            raise refused(
                key_path(path, key),
                raw[key],
                "no root setting with issuer: vault: the root is Vault's (its key type, life and any new root are "
                "set in Vault), and the stack makes none; remove it",
            )
    for key, field in (("server", "server"), ("path", "path"), ("rootCertificate", "root_certificate")):
        if getattr(vault, field) is None:
            raise ConfigError(f"config {key_path(vault_path, key)}: missing; it is required with issuer: vault")
    if (vault.token is None) == (vault.kubernetes_role is None):
        raise ConfigError(
            f"config {vault_path}: give exactly one of token (a Vault token cert-manager signs with) and "
            "kubernetesRole (cert-manager logs in with each cluster's service account token at the cluster's "
            "vaultAuthPath); " + ("both are set" if vault.token is not None else "neither is set")
        )


@refuses("a `context` that the cluster's kubeconfig does not have; a kubeconfig that is not one")
def cluster(values: dict[str, Any], raw: dict[str, Any], path: str, index: Optional[int]) -> dict[str, Any]:
    from .schema import HELLOWORLD_VERSIONS

    config = kubeconfig.read(values["kubeconfig"], key_path(path, "kubeconfig"))
    context = values["context"]
    if context not in config.servers:
        raise refused(
            key_path(path, "context"),
            context,
            "a context of the kubeconfig: " + (", ".join(map(str, config.servers)) or "(it has none)"),
        )
    if values["helloworld_version"] is None:
        values["helloworld_version"] = HELLOWORLD_VERSIONS[(index or 0) % len(HELLOWORLD_VERSIONS)]
    istio_values(
        values["istio_values"],
        key_path(path, "istioValues"),
        {
            "meshId": "mesh:meshId",
            "clusters[i].clusterName": f"{key_path(path, 'clusterName')} ({values['cluster_name']!r})",
            "clusters[i].network": f"{key_path(path, 'network')} ({values['network']!r})",
        },
    )
    return dict(
        values,
        kubeconfig=config.value,
        kubeconfig_is_content=config.is_content,
        admin_server=config.servers[context],
    )


def _unique(clusters: tuple, attribute: str, key: str, path: str) -> None:
    seen: dict[str, int] = {}
    for index, item in enumerate(clusters):
        value = getattr(item, attribute)
        if value in seen:
            raise ConfigError(
                f"config {path}[{index}].{key}: {value!r} is already used by "
                f"{path}[{seen[value]}]; expected a value unique to each cluster"
            )
        seen[value] = index


def _same_cluster_twice(clusters: tuple, path: str) -> None:
    seen: dict[str, int] = {}
    for index, item in enumerate(clusters):
        if not item.admin_server:
            continue
        if item.admin_server in seen:
            first = seen[item.admin_server]
            raise ConfigError(
                f"config {path}[{index}].context: {item.context!r} reaches "
                f"{item.admin_server}, as {path}[{first}].context {clusters[first].context!r} "
                "does: one cluster entered twice; expected a context of another cluster"
            )
        seen[item.admin_server] = index


@refuses(
    "two clusters with the same `name`, `clusterName`, `network` or `apiServerUrl`",
    "two entries whose contexts reach the same API server: one cluster entered twice (a copied entry left unedited)",
)
def mesh(values: dict[str, Any], raw: dict[str, Any], path: str, index: Optional[int]) -> dict[str, Any]:
    clusters = values["clusters"]
    where = key_path(path, "clusters")
    for attribute, key in (
        ("name", "name"),
        ("cluster_name", "clusterName"),
        ("network", "network"),
        ("api_server_url", "apiServerUrl"),
    ):
        _unique(clusters, attribute, key, where)
    _same_cluster_twice(clusters, where)
    _vault_auth_paths(values["certificates"], clusters, where)
    istio_values(
        values["istio_values"],
        key_path(path, "istioValues"),
        {
            "meshId": f"{key_path(path, 'meshId')} ({values['mesh_id']!r})",
            "clusters[i].clusterName": f"each cluster's {where}[i].clusterName",
            "clusters[i].network": f"each cluster's {where}[i].network",
        },
    )
    return values


@refuses(
    "`vaultAuthPath` missing on a cluster, or two clusters sharing one, with `vault.kubernetesRole` (one Kubernetes "
    "auth mount reviews the tokens of one cluster); `vaultAuthPath` without `vault.kubernetesRole`"
)
def _vault_auth_paths(certificates: Any, clusters: tuple, where: str) -> None:
    role = certificates.vault.kubernetes_role if certificates.issuer == "vault" else None
    for index, cluster in enumerate(clusters):
        at = f"{where}[{index}].vaultAuthPath"
        if role is None and cluster.vault_auth_path is not None:
            raise refused(
                at,
                cluster.vault_auth_path,
                "no vaultAuthPath without certificates.vault.kubernetesRole (issuer: vault): it would be ignored",
            )
        if role is not None and cluster.vault_auth_path is None:
            raise ConfigError(
                f"config {at}: missing; with certificates.vault.kubernetesRole every cluster needs the path of the "
                "Vault Kubernetes auth mount that reviews its tokens, e.g. '/v1/auth/kubernetes-"
                f"{cluster.cluster_name}'"
            )
    if role is not None:
        _unique(clusters, "vault_auth_path", "vaultAuthPath", where)


@refuses(
    "in `istioValues` (mesh-wide or a cluster's), what the program sets: `global.meshID` (from `meshId`), "
    "`global.multiCluster.clusterName` and `global.network` (from the cluster's `clusterName` and `network`), and "
    '`pilot.env.AUTO_RELOAD_PLUGIN_CERTS` or `pilot.env.ISTIO_MULTIROOT_MESH` other than `"true"` (renewal and root '
    "rotation depend on them)"
)
def istio_values(given: Mapping[str, Any], where: str, setters: Mapping[str, str]) -> None:
    """Refuse a key of `istioValues` (at `where`) that the program sets itself: each of
    OWNED_GLOBALS, set by the key `setters` names for it, and an entry of PILOT_ENV with another
    value (the same one is harmless)."""
    for keys, setter in OWNED_GLOBALS:
        found: Any = given
        for key in keys:
            found = found.get(key, _ABSENT) if isinstance(found, Mapping) else _ABSENT
        if found is not _ABSENT:
            dotted = ".".join(keys)
            raise refused(
                f"{where}.{dotted}",
                found,
                f"no {dotted} in istioValues: it is set by {setters[setter]} and cannot be overridden; remove it "
                "(change that key instead)",
            )
    env = given.get("pilot", {}).get("env", {})
    for name, value in PILOT_ENV.items():
        if name in env and env[name] != value:
            raise refused(
                f"{where}.pilot.env.{name}",
                env[name],
                f"{value!r}, the program's own value, or no {name}: {PILOT_ENV_REASONS[name]}",
            )


_ABSENT = object()
