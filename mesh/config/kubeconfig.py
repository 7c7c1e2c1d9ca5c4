"""A cluster's kubeconfig, as the config gives it: a file path, or the document itself."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import yaml

from .errors import refused


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
        document = yaml.safe_load(text) or {}
        contexts = {c.get("name"): c.get("context") or {} for c in document.get("contexts") or []}
        servers = {c.get("name"): (c.get("cluster") or {}).get("server", "") for c in document.get("clusters") or []}
    except (yaml.YAMLError, AttributeError):
        raise refused(path, value, "a kubeconfig YAML document", secret=is_content) from None
    return Kubeconfig(value, is_content, {name: servers.get(ctx.get("cluster"), "") for name, ctx in contexts.items()})
