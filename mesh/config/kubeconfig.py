"""A cluster's kubeconfig, as the config gives it: a file path, or the document itself."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

import yaml

from .errors import refused

# libyaml's parser where PyYAML has it (a large kubeconfig parses in a fraction of the time).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Kubeconfig:
    value: str = field(repr=False)
    """An absolute file path, or the document (secret: never in a repr or message)."""
    is_content: bool
    servers: dict[str, str]
    """context name -> the server of its cluster."""


def read(value: str | None, path: str) -> Kubeconfig:
    """`value` as the config gives it (None: `$KUBECONFIG` or `~/.kube/config`); `path` is its key.

    A document spans lines; a one-line JSON kubeconfig starts with "{". Either is content.
    """
    value = value or os.environ.get("KUBECONFIG") or "~/.kube/config"
    is_content = "\n" in value or value.lstrip().startswith("{")
    if is_content:
        text = value
    else:
        value = os.path.abspath(os.path.expanduser(value))
        if not os.path.isfile(value):
            raise refused(path, value, "the path of an existing kubeconfig file")
        with open(value, encoding="utf-8") as handle:
            text = handle.read()
    try:
        servers = _servers(text)
    except (yaml.YAMLError, AttributeError):
        raise refused(path, value, "a kubeconfig YAML document", secret=is_content) from None
    return Kubeconfig(value, is_content, dict(servers))


@functools.lru_cache(maxsize=16)
def _servers(text: str) -> tuple[tuple[str, str], ...]:
    """(context, server) of a kubeconfig document. Cached: every cluster of a mesh usually names
    the same kubeconfig file, which would otherwise be parsed once per cluster."""
    document = yaml.load(text, Loader=_LOADER) or {}
    contexts = {c.get("name"): c.get("context") or {} for c in document.get("contexts") or []}
    servers = {c.get("name"): (c.get("cluster") or {}).get("server", "") for c in document.get("clusters") or []}
    return tuple((name, servers.get(context.get("cluster"), "")) for name, context in contexts.items())
