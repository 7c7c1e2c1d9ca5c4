"""Stack configuration: read and checked once, here, before any resource is registered.

Everything else in the program works from the frozen dataclasses below and never calls
`pulumi.Config` itself. Every error names the key, the value and what would be accepted.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional
from urllib.parse import urlparse

import pulumi
import yaml

from .sail_versions import ISTIO_VERSIONS

NAMESPACE = "mesh"

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_VERSION = re.compile(r"^v\d+\.\d+(\.\d+(-[0-9A-Za-z.]+)?|-latest)$")
_DURATION = re.compile(r"^(\d+)(s|m|h)$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}

UPDATE_STRATEGIES = ("InPlace", "RevisionBased")
READER_ACCESS = ("istio-reader", "cluster-reader")
KEY_ALGORITHMS = ("RSA", "ECDSA")
RSA_BITS = (2048, 3072, 4096)
ECDSA_CURVES = ("P256", "P384", "P521")
HELLOWORLD_VERSIONS = ("v1", "v2")


class ConfigError(pulumi.RunError):
    """A configuration value that cannot be used. Raised before any resource exists."""


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


@dataclass(frozen=True)
class CertificateConfig:
    key_algorithm: str = "RSA"
    rsa_bits: int = 4096
    ecdsa_curve: str = "P256"
    root_validity_hours: int = 3650 * 24
    intermediate_validity_hours: int = 3650 * 24
    intermediate_early_renewal_hours: int = 0
    root_generation: int = 0
    """Which root signs: 0 for the first, one more for each rotation."""
    root_rotation: Optional[str] = None
    """The phase of a root rotation in progress (ROOT_ROTATION_PHASES), None when there is none."""
    root_rotation_wait_hours: int = 24
    """Least time between two phases: every workload certificate is reissued in between."""


@dataclass(frozen=True)
class MeshConfig:
    mesh_id: str
    istio_version: str
    clusters: tuple[ClusterConfig, ...]
    update_strategy: str = "InPlace"
    manage_istio_cni: bool = True
    sample_apps: bool = False
    reader_access: str = "istio-reader"
    ready_timeout_seconds: int = 600
    await_workloads: bool = True
    certificates: CertificateConfig = field(default_factory=CertificateConfig)
    gateway_extra_source_ranges: tuple[str, ...] = ()
    gateway_allow_open_to_internet: bool = False
    reader_token_rotation: str = "1"


# --- small checkers: each returns the checked value or raises ConfigError -----------------


# A value longer than this, or on more than one line, is described rather than quoted.
_QUOTED_MAX = 120


def shown(value: Any, secret: bool = False) -> str:
    """How a value appears in a message. Secret values (a kubeconfig: it carries tokens and keys)
    and anything that could hold one (a mapping, a list, a long or multi-line string) are
    described by their shape, never quoted."""
    if isinstance(value, Mapping):
        keys = "" if secret else ": " + ", ".join(map(str, list(value)[:8])) + (", ..." if len(value) > 8 else "")
        return f"a mapping of {len(value)} key(s){keys}"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} item(s)"
    if isinstance(value, str) and (secret or "\n" in value or len(value) > _QUOTED_MAX):
        lines = value.count("\n") + 1
        return f"a string of {len(value)} characters" + (f" on {lines} lines" if lines > 1 else "") + (
            " (not shown: it may hold credentials)" if secret else "")
    if secret:
        return f"a {type(value).__name__} (not shown)"
    return repr(value)


def _fail(key: str, value: Any, accepted: str, secret: bool = False) -> ConfigError:
    return ConfigError(f"config {key}: {shown(value, secret)} is not accepted; expected {accepted}")


def _require(raw: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in raw or raw[key] is None or raw[key] == "":
        raise ConfigError(f"config {path}: missing; it is required")
    return raw[key]


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(path, value, "a non-empty string")
    return value


def _label(value: Any, path: str) -> str:
    if not isinstance(value, str) or not _DNS1123_LABEL.match(value):
        raise _fail(
            path,
            value,
            "a DNS-1123 label: at most 63 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit (e.g. 'east', 'cluster1', 'network1')",
        )
    return value


def _boolean(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _fail(path, value, "true or false")


def _choice(value: Any, path: str, choices: tuple) -> Any:
    if value not in choices:
        raise _fail(path, value, "one of " + ", ".join(str(c) for c in choices))
    return value


def _positive_int(value: Any, path: str) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _fail(path, value, "a positive whole number")
    return value


def _non_negative_int(value: Any, path: str) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(path, value, "a whole number, 0 or more")
    return value


def _duration_seconds(value: Any, path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match or int(match.group(1)) == 0:
        raise _fail(path, value, "a duration such as '90s', '10m' or '1h', or seconds as a number")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


def _url(value: Any, path: str) -> str:
    parsed = urlparse(value) if isinstance(value, str) else None
    if parsed is not None and (parsed.username or parsed.password):
        # Credentials in a URL: refused, and the URL is not repeated.
        raise _fail(path, value, "an https:// URL without user or password (the remote secret carries a token)",
                    secret=True)
    if parsed is None or parsed.scheme != "https" or not parsed.hostname:
        raise _fail(path, value, "an https:// URL of the API server, e.g. https://api.east.example.com:6443")
    if parsed.query or parsed.fragment:
        raise _fail(path, value, "an https:// URL without a query or fragment (a path, as behind Rancher, is fine)")
    try:
        parsed.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise _fail(path, value, "an https:// URL with a numeric port") from None
    return value


def _version(value: Any, path: str) -> str:
    if not isinstance(value, str) or not (_VERSION.match(value) or value == "master"):
        raise _fail(path, value, "an Istio version such as 'v1.28.0' or 'v1.28-latest'")
    if value not in ISTIO_VERSIONS:
        raise _fail(
            path,
            value,
            "a version the Sail operator accepts (newest first: " + ", ".join(ISTIO_VERSIONS[:12]) + ", ...)",
        )
    return value


def _cidrs(value: Any, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(path, value, "a list of CIDR ranges such as ['203.0.113.0/24']")
    result = []
    for index, item in enumerate(value):
        try:
            result.append(str(ipaddress.ip_network(item, strict=True)))
        except (TypeError, ValueError):
            raise _fail(f"{path}[{index}]", item, "a CIDR range such as '203.0.113.0/24'") from None
    return tuple(result)


def _only_known(raw: Mapping[str, Any], known: tuple[str, ...], path: str) -> None:
    for key in raw:
        if key not in known:
            raise ConfigError(
                f"config {path}{key}: unknown key; accepted keys are " + ", ".join(known)
            )


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(path, value, "an object (a YAML mapping)")
    return value


# --- the schema ---------------------------------------------------------------------------

_CLUSTER_KEYS = (
    "name",
    "kubeconfig",
    "context",
    "clusterName",
    "network",
    "apiServerUrl",
    "helloworldVersion",
    "egressCidrs",
)
_CERT_KEYS = (
    "keyAlgorithm",
    "rsaBits",
    "ecdsaCurve",
    "rootValidityHours",
    "intermediateValidityHours",
    "intermediateEarlyRenewalHours",
    "rootGeneration",
    "rootRotation",
    "rootRotationWaitHours",
)
# trust: a new root is trusted beside the old one; sign: the intermediates are signed by the new
# root, both still trusted; retire: only the new root is trusted. README, "Root rotation".
ROOT_ROTATION_PHASES = ("trust", "sign", "retire")
_MESH_KEYS = (
    "clusters",
    "meshId",
    "istioVersion",
    "updateStrategy",
    "manageIstioCni",
    "sampleApps",
    "readerAccess",
    "readyTimeout",
    "awaitWorkloads",
    "certificates",
    "gatewayExtraSourceRanges",
    "gatewayAllowOpenToInternet",
    "readerTokenRotation",
)


def _kubeconfig(raw: Mapping[str, Any], path: str, context: str) -> tuple[str, bool, str]:
    """The kubeconfig is a file path or, when it holds a newline, the document itself.

    The named context must exist in it: a typo here would otherwise surface as a
    connection error from the provider, far from its cause.
    """
    value = raw.get("kubeconfig") or os.environ.get("KUBECONFIG") or "~/.kube/config"
    if not isinstance(value, str):
        raise _fail(f"{path}.kubeconfig", value, "the path of a kubeconfig file, or the kubeconfig document as "
                    "one string (a YAML block `|`), not as YAML structure", secret=True)
    # A document spans lines; a one-line JSON kubeconfig starts with "{". Either is content.
    is_content = "\n" in value or value.lstrip().startswith("{")
    if is_content:
        text = value
    else:
        value = os.path.abspath(os.path.expanduser(value))
        if not os.path.isfile(value):
            raise _fail(f"{path}.kubeconfig", value, "the path of an existing kubeconfig file")
        with open(value, encoding="utf-8") as handle:
            text = handle.read()
    try:
        document = yaml.safe_load(text) or {}
        contexts = {c.get("name"): c.get("context") or {} for c in document.get("contexts") or []}
        servers = {c.get("name"): (c.get("cluster") or {}).get("server", "") for c in document.get("clusters") or []}
    except (yaml.YAMLError, AttributeError):
        raise _fail(f"{path}.kubeconfig", value, "a kubeconfig YAML document", secret=is_content) from None
    if context not in contexts:
        raise _fail(f"{path}.context", context, "a context of the kubeconfig: " + (", ".join(map(str, contexts)) or "(it has none)"))
    return value, is_content, servers.get(contexts[context].get("cluster"), "")


def _cluster(raw: Any, index: int) -> ClusterConfig:
    path = f"{NAMESPACE}:clusters[{index}]"
    raw = _object(raw, path)
    _only_known(raw, _CLUSTER_KEYS, path + ".")
    name = _label(_require(raw, "name", f"{path}.name"), f"{path}.name")
    context = _string(_require(raw, "context", f"{path}.context"), f"{path}.context")
    kubeconfig, is_content, admin_server = _kubeconfig(raw, path, context)
    default_version = HELLOWORLD_VERSIONS[index % len(HELLOWORLD_VERSIONS)]
    return ClusterConfig(
        name=name,
        kubeconfig=kubeconfig,
        kubeconfig_is_content=is_content,
        context=context,
        cluster_name=_label(_require(raw, "clusterName", f"{path}.clusterName"), f"{path}.clusterName"),
        network=_label(_require(raw, "network", f"{path}.network"), f"{path}.network"),
        api_server_url=_url(_require(raw, "apiServerUrl", f"{path}.apiServerUrl"), f"{path}.apiServerUrl"),
        admin_server=admin_server,
        helloworld_version=_choice(
            raw.get("helloworldVersion", default_version), f"{path}.helloworldVersion", HELLOWORLD_VERSIONS
        ),
        egress_cidrs=_cidrs(raw.get("egressCidrs"), f"{path}.egressCidrs"),
    )


def _certificates(raw: Any) -> CertificateConfig:
    path = f"{NAMESPACE}:certificates"
    if raw is None:
        return CertificateConfig()
    raw = _object(raw, path)
    _only_known(raw, _CERT_KEYS, path + ".")
    defaults = CertificateConfig()
    algorithm = _choice(raw.get("keyAlgorithm", defaults.key_algorithm), f"{path}.keyAlgorithm", KEY_ALGORITHMS)
    # A setting of the other algorithm would be silently ignored, and the root it shapes is
    # protected: undoing that takes a root rotation. Refuse it instead.
    other, ignored = ("ECDSA", "ecdsaCurve") if algorithm == "RSA" else ("RSA", "rsaBits")
    if ignored in raw:
        raise _fail(
            f"{path}.{ignored}",
            raw[ignored],
            f"no {ignored} while keyAlgorithm is {algorithm!r} (the keys would be {algorithm} and it would be "
            f"ignored); set keyAlgorithm: {other} to use it, or remove {ignored}",
        )
    rsa_bits = raw.get("rsaBits", defaults.rsa_bits)
    rsa_bits = _choice(int(rsa_bits) if str(rsa_bits).isdigit() else rsa_bits, f"{path}.rsaBits", RSA_BITS)
    intermediate_hours = _positive_int(
        raw.get("intermediateValidityHours", defaults.intermediate_validity_hours), f"{path}.intermediateValidityHours"
    )
    root_hours = _positive_int(raw.get("rootValidityHours", defaults.root_validity_hours), f"{path}.rootValidityHours")
    early = _non_negative_int(
        raw.get("intermediateEarlyRenewalHours", defaults.intermediate_early_renewal_hours),
        f"{path}.intermediateEarlyRenewalHours",
    )
    if early > intermediate_hours:
        raise _fail(
            f"{path}.intermediateEarlyRenewalHours",
            early,
            f"at most intermediateValidityHours ({intermediate_hours}); equal reissues on every up",
        )
    if intermediate_hours > root_hours:
        raise _fail(
            f"{path}.intermediateValidityHours",
            intermediate_hours,
            f"at most rootValidityHours ({root_hours}): an intermediate cannot outlive its root",
        )
    generation = _non_negative_int(raw.get("rootGeneration", defaults.root_generation), f"{path}.rootGeneration")
    phase = raw.get("rootRotation")
    if phase is not None:
        phase = _choice(phase, f"{path}.rootRotation", ROOT_ROTATION_PHASES)
        if generation == 0:
            raise _fail(
                f"{path}.rootGeneration",
                generation,
                f"1 or more while rootRotation is {phase!r}: the generation of the new root (the first root is 0)",
            )
    wait = _non_negative_int(
        raw.get("rootRotationWaitHours", defaults.root_rotation_wait_hours), f"{path}.rootRotationWaitHours"
    )
    return CertificateConfig(
        key_algorithm=algorithm,
        rsa_bits=rsa_bits,
        ecdsa_curve=_choice(raw.get("ecdsaCurve", defaults.ecdsa_curve), f"{path}.ecdsaCurve", ECDSA_CURVES),
        root_validity_hours=root_hours,
        intermediate_validity_hours=intermediate_hours,
        intermediate_early_renewal_hours=early,
        root_generation=generation,
        root_rotation=phase,
        root_rotation_wait_hours=wait,
    )


def _unique(clusters: tuple[ClusterConfig, ...], attribute: str, key: str) -> None:
    seen: dict[str, int] = {}
    for index, cluster in enumerate(clusters):
        value = getattr(cluster, attribute)
        if value in seen:
            raise ConfigError(
                f"config {NAMESPACE}:clusters[{index}].{key}: {value!r} is already used by "
                f"{NAMESPACE}:clusters[{seen[value]}]; expected a value unique to each cluster"
            )
        seen[value] = index


def _same_cluster_twice(clusters: tuple[ClusterConfig, ...]) -> None:
    """Two entries whose kubeconfig contexts reach the same API server are one cluster entered
    twice (a copied entry left unedited): every object would be made twice on it."""
    seen: dict[str, int] = {}
    for index, cluster in enumerate(clusters):
        if not cluster.admin_server:
            continue
        if cluster.admin_server in seen:
            first = seen[cluster.admin_server]
            raise ConfigError(
                f"config {NAMESPACE}:clusters[{index}].context: {cluster.context!r} reaches "
                f"{cluster.admin_server}, as {NAMESPACE}:clusters[{first}].context {clusters[first].context!r} "
                "does: one cluster entered twice; expected a context of another cluster"
            )
        seen[cluster.admin_server] = index


def parse(raw: Mapping[str, Any]) -> MeshConfig:
    """Check a mapping of `mesh:` config keys (without the prefix) and return the config."""
    _only_known(raw, _MESH_KEYS, f"{NAMESPACE}:")
    clusters_raw = _require(raw, "clusters", f"{NAMESPACE}:clusters")
    if not isinstance(clusters_raw, list):
        raise _fail(f"{NAMESPACE}:clusters", clusters_raw, "a list of clusters")
    if len(clusters_raw) < 2:
        raise ConfigError(
            f"config {NAMESPACE}:clusters: {len(clusters_raw)} cluster(s) given; a multicluster mesh "
            "needs at least two"
        )
    clusters = tuple(_cluster(item, index) for index, item in enumerate(clusters_raw))
    _unique(clusters, "name", "name")
    _unique(clusters, "cluster_name", "clusterName")
    _unique(clusters, "network", "network")
    _unique(clusters, "api_server_url", "apiServerUrl")
    _same_cluster_twice(clusters)

    defaults = MeshConfig(mesh_id="", istio_version="", clusters=())
    mesh_id = _label(_require(raw, "meshId", f"{NAMESPACE}:meshId"), f"{NAMESPACE}:meshId")
    rotation = raw.get("readerTokenRotation", defaults.reader_token_rotation)
    if isinstance(rotation, bool) or not isinstance(rotation, (str, int)) or str(rotation) == "":
        raise _fail(f"{NAMESPACE}:readerTokenRotation", rotation, "a non-empty string or number; change it to rotate")
    return MeshConfig(
        mesh_id=mesh_id,
        istio_version=_version(_require(raw, "istioVersion", f"{NAMESPACE}:istioVersion"), f"{NAMESPACE}:istioVersion"),
        clusters=clusters,
        update_strategy=_choice(
            raw.get("updateStrategy", defaults.update_strategy), f"{NAMESPACE}:updateStrategy", UPDATE_STRATEGIES
        ),
        manage_istio_cni=_boolean(raw.get("manageIstioCni", defaults.manage_istio_cni), f"{NAMESPACE}:manageIstioCni"),
        sample_apps=_boolean(raw.get("sampleApps", defaults.sample_apps), f"{NAMESPACE}:sampleApps"),
        reader_access=_choice(raw.get("readerAccess", defaults.reader_access), f"{NAMESPACE}:readerAccess", READER_ACCESS),
        ready_timeout_seconds=_duration_seconds(
            raw.get("readyTimeout", defaults.ready_timeout_seconds), f"{NAMESPACE}:readyTimeout"
        ),
        await_workloads=_boolean(raw.get("awaitWorkloads", defaults.await_workloads), f"{NAMESPACE}:awaitWorkloads"),
        certificates=_certificates(raw.get("certificates")),
        gateway_extra_source_ranges=_cidrs(raw.get("gatewayExtraSourceRanges"), f"{NAMESPACE}:gatewayExtraSourceRanges"),
        gateway_allow_open_to_internet=_boolean(
            raw.get("gatewayAllowOpenToInternet", defaults.gateway_allow_open_to_internet),
            f"{NAMESPACE}:gatewayAllowOpenToInternet",
        ),
        reader_token_rotation=str(rotation),
    )


def _decode(value: Any) -> Any:
    """Pulumi hands structured config to the program as JSON text, scalars as plain text."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def raw_stack_config() -> dict[str, Any]:
    """Every `mesh:` key of the running stack, decoded, without the prefix."""
    prefix = NAMESPACE + ":"
    return {
        key[len(prefix):]: _decode(value)
        for key, value in pulumi.runtime.config.CONFIG.get().items()
        if key.startswith(prefix)
    }


def refuse_misplaced(keys: Iterable[str], project: str) -> None:
    """`pulumi config set meshId mesh1` stores `<project>:meshId`, not `mesh:meshId`: say so,
    rather than that `mesh:meshId` is missing."""
    misplaced = sorted(k for k in keys if k.split(":", 1)[0] == project and k.split(":", 1)[-1] in _MESH_KEYS)
    if misplaced:
        key = misplaced[0].split(":", 1)[1]
        raise ConfigError(
            f"config {', '.join(misplaced)}: set under the project's namespace, which this program does not read; "
            f"expected {NAMESPACE}:{key} (`pulumi config set {NAMESPACE}:{key} ...`; without a namespace, "
            f"`pulumi config set` uses the project's name, {project})"
        )


def load() -> MeshConfig:
    """The running stack's configuration, checked."""
    refuse_misplaced(pulumi.runtime.config.CONFIG.get(), pulumi.get_project())
    return parse(raw_stack_config())
