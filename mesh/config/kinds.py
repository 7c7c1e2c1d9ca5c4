"""The kinds of value a config key takes: how each is checked, what it accepts (in words, for
messages and docs/configuration.md) and its JSON Schema (for the editor schema).

Pulumi hands scalar config to a program as text (`pulumi config set mesh:sampleApps true` is
the string "true"), so every kind takes its value's text form too, and nothing more: "yes" is
not a boolean here.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional
from urllib.parse import urlparse

from cryptography import x509

from . import istio_values
from .errors import refused

_DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_VERSION = re.compile(r"^v\d+\.\d+(\.\d+(-[0-9A-Za-z.]+)?|-latest)$")
_DURATION = re.compile(r"^(\d+)(s|m|h)$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}
_HTTPS_URL = r"^https://(\[[0-9a-fA-F:.]+\]|[^/?#@:\[\]]+)(:[0-9]{1,5})?(/[^?#]*)?$"
# Vault's path that signs a CA certificate with the mount's issuer; cert-manager POSTs to /v1/<it>.
_VAULT_SIGN_PATH = r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*/root/sign-intermediate"
_VAULT_AUTH_PATH = r"/v1/auth(/[A-Za-z0-9_.-]+)+"
_SERVICE_ACCOUNT = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?/[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?"


class Refused(Exception):
    """Raised by a kind's converter; `Kind.check` turns it into the ConfigError at the key's path.

    `accepted` replaces the kind's own words where a check is more specific; `at` is appended to
    the path (a list item's `[i]`); `value` replaces the value shown (that item)."""

    _UNSET = object()

    def __init__(self, accepted: Optional[str] = None, at: str = "", value: Any = _UNSET, secret: bool = False):
        super().__init__(accepted)
        self.accepted, self.at, self.value, self.secret = accepted, at, value, secret


@dataclass(frozen=True)
class Kind:
    accepted: str
    """What is accepted, in words: the end of every refusal of this kind, and the docs' column."""
    schema: dict[str, Any]
    convert: Callable[[Any], Any] = field(repr=False)
    secret: bool = False
    """The value may hold credentials: never shown, whatever its shape."""

    def check(self, value: Any, path: str) -> Any:
        try:
            return self.convert(value)
        except Refused as no:
            shown_value = value if no.value is Refused._UNSET else no.value
            raise refused(path + no.at, shown_value, no.accepted or self.accepted, self.secret or no.secret) from None


def _whole(value: Any) -> Any:
    """A whole number, from its text form too ("4096" as Pulumi hands it over)."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise Refused()
    return value


def _label(value: Any) -> str:
    if not isinstance(value, str) or not re.match(_DNS1123_LABEL, value):
        raise Refused()
    return value


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise Refused()


def choice(*values: Any) -> Kind:
    """One of `values`; whole numbers also in their text form."""

    def convert(value: Any) -> Any:
        value = _whole(value) if all(_is_int(v) for v in values) else value
        if value not in values:
            raise Refused()
        return value

    texts = [str(v) for v in values if _is_int(v)]
    return Kind("one of " + ", ".join(str(v) for v in values), {"enum": [*values, *texts]}, convert)


def _at_least(least: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        value = _whole(value)
        if not _is_int(value) or value < least:
            raise Refused()
        return value

    return convert


def _whole_schema(least: int) -> dict[str, Any]:
    pattern = r"^[0-9]+$" if least == 0 else r"^0*[1-9][0-9]*$"
    return {"oneOf": [{"type": "integer", "minimum": least}, {"type": "string", "pattern": pattern}]}


def duration_seconds(value: Any) -> int:
    """A duration as the config takes it (60, "60s", "5m", "1h"), in seconds; Refused otherwise."""
    if _is_int(value) and value > 0:
        return value
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match or int(match.group(1)) == 0:
        raise Refused()
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


def _https_url(value: Any) -> str:
    """An https:// URL of a server: no credentials (refused without repeating the URL), no query
    or fragment, a numeric port."""
    parsed = urlparse(value) if isinstance(value, str) else None
    if parsed is not None and (parsed.username or parsed.password):
        # Credentials in a URL: refused, and the URL is not repeated.
        raise Refused("an https:// URL without user or password (credentials go elsewhere)", secret=True)
    if parsed is None or parsed.scheme != "https" or not parsed.hostname:
        raise Refused()
    if parsed.query or parsed.fragment:
        raise Refused("an https:// URL without a query or fragment (a path, as behind Rancher, is fine)")
    try:
        parsed.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise Refused("an https:// URL with a numeric port") from None
    return value


def _pem_certificates(value: Any) -> tuple[x509.Certificate, ...]:
    if not isinstance(value, str) or "-----BEGIN CERTIFICATE-----" not in value:
        raise Refused()
    try:
        return tuple(x509.load_pem_x509_certificates(value.encode()))
    except ValueError:
        raise Refused() from None


def _ca_bundle(value: Any) -> str:
    _pem_certificates(value)
    return value


def _root_certificate(value: Any) -> str:
    certificates = _pem_certificates(value)
    if len(certificates) != 1:
        raise Refused(f"one certificate, the root alone ({len(certificates)} given)")
    root = certificates[0]
    try:
        constraints = root.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if root.subject != root.issuer or constraints is None or not constraints.ca:
        raise Refused(
            "a root: a self-signed CA certificate (this one is "
            + ("not a CA" if constraints is None or not constraints.ca else f"issued by {root.issuer.rfc4514_string()}")
            + ")"
        )
    return value


def _matching(pattern: str) -> Callable[[Any], str]:
    """Text that matches `pattern` whole."""

    def convert(value: Any) -> str:
        if not isinstance(value, str) or not re.fullmatch(pattern, value):
            raise Refused()
        return value

    return convert


def _istio_version(value: Any) -> str:
    if not isinstance(value, str) or not (_VERSION.match(value) or value == "master"):
        raise Refused()
    return value


def _cidrs(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise Refused()
    result = []
    for index, item in enumerate(value):
        try:
            result.append(str(ipaddress.ip_network(item, strict=True)))
        except (TypeError, ValueError):
            raise Refused("a CIDR range such as '203.0.113.0/24'", at=f"[{index}]", value=item) from None
    return tuple(result)


_SERVICE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _services(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise Refused()
    for index, item in enumerate(value):
        if not isinstance(item, str) or not _SERVICE.match(item):
            raise Refused("a Service as <name>.<namespace>, such as 'helloworld.sample'", at=f"[{index}]", value=item)
    if len(set(value)) != len(value):
        raise Refused("each Service once")
    return tuple(value)


def _rotation(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
        raise Refused()
    return str(value)


def _dotted(path: tuple[str, ...]) -> str:
    return "".join(f".{key}" for key in path)


def _string_keys(value: Any, at: str) -> None:
    """Every key of every mapping in `value` is a string, as Helm values' keys are (YAML makes
    `1:` or `true:` an int or a bool)."""
    items = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(value, Mapping) and not isinstance(key, str):
            raise Refused(
                f"keys that are strings, as Helm values' keys are (this one is {type(key).__name__}): quote it in the "
                f'stack file, "{json.dumps(key)}"',
                at=at,
                value=key,
            )
        _string_keys(item, f"{at}.{key}" if isinstance(value, Mapping) else f"{at}[{key}]")


def _istio_values(value: Any) -> dict[str, Any]:
    """Helm values of Istio's charts: a mapping with string keys; where the program writes its own
    values (`global`, `global.multiCluster`, `pilot`, `pilot.env`), mappings to merge into; and
    `pilot.env` of strings, as a container's env is. The keys the program owns are refused by
    `rules.istio_values`, which can name the key that sets each."""
    if not isinstance(value, Mapping):
        raise Refused()
    _string_keys(value, "")
    for path in istio_values.MAPPINGS:
        found: Any = value
        for key in path:
            found = found.get(key, _ABSENT) if found is not _ABSENT else _ABSENT
        if found is not _ABSENT and not isinstance(found, Mapping):
            raise Refused(
                "a mapping: the program writes its own values under this key, and merges yours into them",
                at=_dotted(path),
                value=found,
            )
    env = value.get("pilot", {}).get("env", {})
    for name, item in env.items():
        if not isinstance(item, str):
            raise Refused(
                f"a string, as every value of a container's env is (the API server refuses the Istio resource "
                f"otherwise): quote it in the stack file, {json.dumps(json.dumps(item))}, or use `pulumi config set "
                "--path --type string`",
                at=f"{_dotted(istio_values.ENV)}.{name}",
                value=item,
            )
    return copy.deepcopy(dict(value))


_ABSENT = object()


def _istio_values_schema() -> dict[str, Any]:
    def owned(key: str) -> dict[str, Any]:
        return {"description": f"set by mesh:{key}; refused here", "not": {}}

    globals_ = {
        "meshID": owned("meshId"),
        "network": owned("clusters[i].network"),
        "multiCluster": {"type": "object", "properties": {"clusterName": owned("clusters[i].clusterName")}},
    }
    env = {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "properties": {
            name: {
                "description": f"the program sets it to {value!r}: {istio_values.PILOT_ENV_REASONS[name]}",
                "const": value,
            }
            for name, value in istio_values.PILOT_ENV.items()
        },
    }
    return {
        "type": "object",
        "properties": {
            "global": {"type": "object", "properties": globals_},
            "pilot": {"type": "object", "properties": {"env": env}},
        },
    }


# A Pulumi secret as it sits in a stack file.
_SECURE = {"type": "object", "properties": {"secure": {"type": "string"}}, "required": ["secure"]}

TEXT = Kind("a non-empty string", {"type": "string", "minLength": 1}, _text)
LABEL = Kind(
    "a DNS-1123 label: at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit "
    "(e.g. 'east', 'cluster1', 'network1')",
    {"type": "string", "pattern": _DNS1123_LABEL},
    _label,
)
BOOLEAN = Kind("true or false", {"oneOf": [{"type": "boolean"}, {"enum": ["true", "false"]}]}, _boolean)
POSITIVE = Kind("a positive whole number", _whole_schema(1), _at_least(1))
NON_NEGATIVE = Kind("a whole number, 0 or more", _whole_schema(0), _at_least(0))
DURATION = Kind(
    "a duration such as '90s', '10m' or '1h', or seconds as a number",
    {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": r"^0*[1-9][0-9]*[smh]$"}]},
    duration_seconds,
)
API_SERVER_URL = Kind(
    "an https:// URL of the API server, e.g. https://api.east.example.com:6443",
    {"type": "string", "pattern": _HTTPS_URL},
    _https_url,
)
VAULT_SERVER = Kind(
    "an https:// URL of the Vault server, e.g. https://vault.example.com:8200",
    {"type": "string", "pattern": _HTTPS_URL},
    _https_url,
)
VAULT_SIGN_PATH = Kind(
    "the path of a PKI mount's sign-intermediate endpoint, without /v1/, e.g. 'pki/root/sign-intermediate' "
    "(the only Vault endpoint that signs a CA certificate; a role's pki/sign/<role> does not)",
    {"type": "string", "pattern": f"^{_VAULT_SIGN_PATH}$"},
    _matching(_VAULT_SIGN_PATH),
)
VAULT_AUTH_PATH = Kind(
    "the path of a Kubernetes auth mount, e.g. '/v1/auth/kubernetes-east'",
    {"type": "string", "pattern": f"^{_VAULT_AUTH_PATH}$"},
    _matching(_VAULT_AUTH_PATH),
)
CA_BUNDLE = Kind(
    "PEM certificates (-----BEGIN CERTIFICATE----- ...)",
    {"type": "string", "pattern": "-----BEGIN CERTIFICATE-----"},
    _ca_bundle,
)
ROOT_CERTIFICATE = Kind(
    "the root's PEM certificate (-----BEGIN CERTIFICATE----- ...), self-signed",
    {"type": "string", "pattern": "-----BEGIN CERTIFICATE-----"},
    _root_certificate,
)
SERVICE_ACCOUNT = Kind(
    "a service account as namespace/name, e.g. 'cert-manager/cert-manager'",
    {"type": "string", "pattern": f"^{_SERVICE_ACCOUNT}$"},
    _matching(_SERVICE_ACCOUNT),
)
SECRET_TEXT = Kind(
    "a non-empty string (set it with `pulumi config set --secret`)",
    {"oneOf": [{"type": "string", "minLength": 1}, _SECURE]},
    _text,
    secret=True,
)
ISTIO_VERSION = Kind(
    "an Istio version such as 'v1.30.3' or 'v1.30-latest' (one the clusters' Sail operator lists: checked "
    "against each reachable cluster's Istio CRD before anything changes)",
    {"type": "string", "pattern": _VERSION.pattern},
    _istio_version,
)
CIDRS = Kind(
    "a list of CIDR ranges such as ['203.0.113.0/24']",
    {"type": "array", "items": {"type": "string", "pattern": r"^[0-9a-fA-F.:]+/[0-9]{1,3}$"}},
    _cidrs,
)
SERVICES = Kind(
    "a list of Services as <name>.<namespace>, such as ['helloworld.sample']",
    {"type": "array", "items": {"type": "string", "pattern": _SERVICE.pattern}, "uniqueItems": True},
    _services,
)
ROTATION = Kind(
    "a non-empty string or number; change it to rotate",
    {"oneOf": [{"type": "string", "minLength": 1}, {"type": "integer"}]},
    _rotation,
)
KUBECONFIG = Kind(
    "the path of a kubeconfig file, or the kubeconfig document as one string (a YAML block `|`), not as YAML structure",
    {"oneOf": [{"type": "string", "minLength": 1}, _SECURE]},
    _text,
    secret=True,
)
ISTIO_VALUES = Kind(
    "a mapping of Helm values of Istio's charts (the `Istio` resource's `spec.values`), e.g. "
    '`{pilot: {env: {PILOT_ENABLE_STATUS: "true"}}}`; `pilot.env` values are strings',
    _istio_values_schema(),
    _istio_values,
)
