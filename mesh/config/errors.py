"""How a refused configuration value is told: the key, the value (never a secret) and what is accepted.

Pulumi-free: `mesh verify` and the planning modules raise and show these too. The program's
entry (`mesh.program.main`) turns a ConfigError into Pulumi's one-line RunError.
"""

from __future__ import annotations

from typing import Any, Mapping

NAMESPACE = "mesh"

# A value longer than this, or on more than one line, is described rather than quoted.
_QUOTED_MAX = 120


class ConfigError(Exception):
    """A configuration value that cannot be used. Raised before anything is registered."""


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
        return (
            f"a string of {len(value)} characters"
            + (f" on {lines} lines" if lines > 1 else "")
            + (" (not shown: it may hold credentials)" if secret else "")
        )
    if secret:
        return f"a {type(value).__name__} (not shown)"
    return repr(value)


def refused(path: str, value: Any, accepted: str, secret: bool = False) -> ConfigError:
    """The one form of a refusal: `config <path>: <value> is not accepted; expected <accepted>`."""
    return ConfigError(f"config {path}: {shown(value, secret)} is not accepted; expected {accepted}")


def key_path(parent: str, key: str) -> str:
    """`mesh:` + `meshId` is `mesh:meshId`; `mesh:certificates` + `rsaBits` is `mesh:certificates.rsaBits`."""
    return f"{parent}{key}" if parent.endswith(":") else f"{parent}.{key}"
