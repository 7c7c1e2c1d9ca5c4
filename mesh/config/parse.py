"""Checks a mapping of `mesh:` keys against the schema and returns the frozen config.

One walk for every section: not an object, an unknown key, a missing key, a value of the wrong
kind, then the section's rule for what spans its keys. The first problem found is raised,
naming the key's full path.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Optional

from .errors import NAMESPACE, ConfigError, key_path, refused
from .model import MeshConfig
from .schema import MESH, REQUIRED, ROOT, Key, ListOf, Section


def parse(raw: Mapping[str, Any]) -> MeshConfig:
    """Check a mapping of `mesh:` config keys (without the prefix) and return the config."""
    return _section(MESH, raw, ROOT, None)


def _section(section: Section, raw: Any, path: str, index: Optional[int]) -> Any:
    if not isinstance(raw, Mapping):
        raise refused(path.rstrip(":"), raw, "an object (a YAML mapping)")
    names = [key.name for key in section.keys]
    for name in raw:
        if name not in names:
            raise ConfigError(f"config {key_path(path, str(name))}: unknown key; accepted keys are " + ", ".join(names))
    values = {key.attribute: _value(key, raw.get(key.name), key_path(path, key.name)) for key in section.keys}
    if section.finish:
        values = section.finish(values, raw, path, index)
    return section.model(**values)


def _value(key: Key, value: Any, path: str) -> Any:
    if value is None or (key.default is REQUIRED and value == ""):
        if key.default is REQUIRED:
            raise ConfigError(f"config {path}: missing; it is required")
        if isinstance(key.kind, Section):
            return _section(key.kind, key.default, path, None)
        return key.default
    if isinstance(key.kind, Section):
        return _section(key.kind, value, path, None)
    if isinstance(key.kind, ListOf):
        if not isinstance(value, list):
            raise refused(path, value, key.kind.accepted)
        if len(value) < key.kind.least:
            raise ConfigError(f"config {path}: " + key.kind.too_few.format(count=len(value)))
        return tuple(_section(key.kind.item, item, f"{path}[{i}]", i) for i, item in enumerate(value))
    return key.kind.check(value, path)


def _decode(value: Any) -> Any:
    """Pulumi hands structured config to the program as JSON text, scalars as plain text."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def mesh_keys(config: Mapping[str, Any], project: str) -> dict[str, Any]:
    """The `mesh:` keys of a stack's whole config (every namespace, as Pulumi hands it to a
    program), decoded and without the prefix. A key of ours set under the project's namespace
    (`pulumi config set meshId x` stores `<project>:meshId`) is refused with the fix."""
    refuse_misplaced(config, project)
    return {key[len(ROOT) :]: _decode(value) for key, value in config.items() if key.startswith(ROOT)}


def refuse_misplaced(keys: Iterable[str], project: str) -> None:
    """`pulumi config set meshId mesh1` stores `<project>:meshId`, not `mesh:meshId`: say so,
    rather than that `mesh:meshId` is missing."""
    ours = {key.name for key in MESH.keys}
    misplaced = sorted(k for k in keys if k.split(":", 1)[0] == project and k.split(":", 1)[-1] in ours)
    if misplaced:
        key = misplaced[0].split(":", 1)[1]
        raise ConfigError(
            f"config {', '.join(misplaced)}: set under the project's namespace, which this program does not read; "
            f"expected {NAMESPACE}:{key} (`pulumi config set {NAMESPACE}:{key} ...`; without a namespace, "
            f"`pulumi config set` uses the project's name, {project})"
        )
