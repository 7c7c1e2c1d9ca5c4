"""Requests and responses of the lab's Vault stand-in (lab/vault/server.py) as Vault's framework reads
and writes them: parameters typed by a schema (sdk/framework field types, with
go-secure-stdlib/parseutil's readings of durations, booleans and comma lists), errors as an HTTP
status with Vault's `{"errors": [...]}`, and the JSON envelope of a response (api.Secret)."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Callable


LOG = "vault_pki stand-in:"  # how every line the stand-in prints begins


class VaultError(Exception):
    """An error response: HTTP status and Vault's `errors` list."""

    def __init__(self, status: int, *errors: str):
        super().__init__(f"{status}: {'; '.join(errors)}")
        self.status = status
        self.errors = list(errors)


def denied() -> VaultError:
    return VaultError(403, "permission denied")


def unsupported(name: str) -> VaultError:
    return VaultError(400, f"{name} is not implemented by the lab's Vault stand-in (lab/vault/server.py)")


_GO_DURATION = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def duration_seconds(value: Any) -> int:
    """go-secure-stdlib/parseutil.ParseDurationSecond, in whole seconds (TypeDurationSecond): an
    integer is seconds, `Nd` days, else Go's time.ParseDuration ("2160h0m0s", "1.5h", "90m")."""
    if isinstance(value, bool):
        raise ValueError("not a duration")
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip()
    if text == "" or text == "0":
        return 0
    if re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text)
    if re.fullmatch(r"[0-9]+d", text):
        return int(text[:-1]) * 86400
    sign, body = (-1, text[1:]) if text.startswith("-") else (1, text.lstrip("+"))
    total, pos = 0.0, 0
    for match in _GO_DURATION.finditer(body):
        if match.start() != pos or match.group(1) in ("", "."):
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(body) or not body:
        raise ValueError(f'time: invalid duration "{text}"')
    return int(sign * total)


def go_duration(seconds: int) -> str:
    """Go's time.Duration.String() of whole seconds: "768h0m0s", "1m30s", "45s"."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    text = str(value)
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("", "0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("not an integer")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("not an integer")
    return int(value)


def _strings(value: Any) -> list[str]:
    """TypeCommaStringSlice: a list, or one comma-separated string; each item trimmed."""
    items = value if isinstance(value, list) else ([] if value in ("", None) else str(value).split(","))
    return [str(item).strip() for item in items if str(item).strip()]


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "string": lambda v: v if isinstance(v, str) else json.dumps(v) if isinstance(v, (dict, list)) else str(v),
    "bool": _bool,
    "int": _int,
    "duration": duration_seconds,
    "strings": _strings,
    "map": lambda v: dict(v) if isinstance(v, dict) else {},
}


class Fields:
    """A request's parameters typed by a schema of name -> (type, default), as Vault's
    framework.FieldData; parameters outside the schema end up in one warning, as Vault's."""

    def __init__(self, raw: dict, schema: dict[str, tuple[str, Any]], unimplemented: tuple[str, ...] = ()):
        self.raw, self.values = raw, {}
        for name, (kind, default) in schema.items():
            if raw.get(name) is None:
                self.values[name] = list(default) if isinstance(default, list) else default
                continue
            try:
                self.values[name] = _CONVERT[kind](raw[name])
            except (ValueError, TypeError) as error:
                raise VaultError(400, f'error converting input {raw[name]!r} for field "{name}": {error}') from None
        for name in unimplemented:
            if self.values.get(name):
                raise unsupported(f"parameter {name!r}")
        ignored = sorted(set(raw) - set(schema))
        # sdk/framework/backend.go: unknown parameters are ignored, with this warning.
        self.warnings = [f"Endpoint ignored these unrecognized parameters: [{' '.join(ignored)}]"] if ignored else []

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def given(self, name: str) -> bool:
        return self.raw.get(name) is not None


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"


def envelope(
    data: Any = None, warnings: list[str] | None = None, auth: dict | None = None, mount_type: str = ""
) -> Reply:
    """Vault's response (api.Secret); 204 when there is nothing to say (http/logical.go)."""
    if data is None and auth is None and not warnings:
        return Reply(204)
    body = {
        "request_id": str(uuid.uuid4()),
        "lease_id": "",
        "renewable": False,
        "lease_duration": 0,
        "data": data,
        "wrap_info": None,
        "warnings": warnings or None,
        "auth": auth,
        "mount_type": mount_type,
    }
    return Reply(200, json.dumps(body).encode())
