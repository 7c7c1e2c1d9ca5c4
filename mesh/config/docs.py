"""The schema told two ways: the configuration tables of docs/configuration.md and a JSON Schema
for editors.

`python -m mesh.config` rewrites both (`schema/stack-config.schema.json` and docs/configuration.md
between its `config-tables` markers); `tests/test_config_docs.py` fails when either differs from the
schema.
"""

from __future__ import annotations

import json
from typing import Any

from . import kinds, rules
from .schema import CERTIFICATES, CLUSTER, MESH, REQUIRED, ROOT, VAULT, Key, ListOf, Section

SCHEMA_ID = "https://github.com/istio-mesh/istio-mesh/schema/stack-config.schema.json"
BEGIN, END = "<!-- config-tables: begin (python -m mesh.config) -->", "<!-- config-tables: end -->"


def _default(key: Key) -> str:
    if key.shown_default:
        return key.shown_default
    if key.default is REQUIRED:
        return "required"
    if isinstance(key.kind, Section):
        return "(keys below)"
    return f"`{json.dumps(list(key.default) if isinstance(key.default, tuple) else key.default)}`"


def _accepted(key: Key) -> str:
    if isinstance(key.kind, Section):
        return "an object"
    if isinstance(key.kind, ListOf):
        return f"{key.kind.accepted}, at least {key.kind.least}"
    if key.kind is kinds.ISTIO_VERSION:
        return "a version the clusters' Sail operator lists, e.g. `v1.30.3` or `v1.30-latest`"
    return key.kind.accepted.replace("|", "\\|")


def _table(section: Section, prefix: str = "") -> list[str]:
    rows = ["| key | default | accepted | meaning |", "|---|---|---|---|"]
    for key in section.keys:
        rows.append(f"| `{prefix}{key.name}` | {_default(key)} | {_accepted(key)} | {key.doc} |")
    return rows


def config_tables() -> str:
    """docs/configuration.md's tables and the list of what is refused across keys."""
    lines = _table(MESH)
    lines += ["", "Certificates (`certificates.…`):", "", *_table(CERTIFICATES, "certificates.")]
    lines += ["", "Vault (`certificates.vault.…`, with `certificates.issuer: vault`):", ""]
    lines += _table(VAULT, "certificates.vault.")
    lines += ["", "Per cluster (`clusters[i].…`):", "", *_table(CLUSTER)]
    lines += ["", "Refused across keys, before anything is made:", ""]
    lines += [f"- {what}" for what in rules.REFUSED]
    return "\n".join(lines) + "\n"


def _schema_of(kind: Any) -> dict[str, Any]:
    if isinstance(kind, Section):
        return {
            "type": "object",
            "additionalProperties": False,
            "required": [key.name for key in kind.keys if key.default is REQUIRED],
            "properties": {key.name: _property(key) for key in kind.keys},
        }
    if isinstance(kind, ListOf):
        return {"type": "array", "minItems": kind.least, "items": _schema_of(kind.item)}
    return dict(kind.schema)


def _property(key: Key) -> dict[str, Any]:
    schema = {"description": key.doc, **_schema_of(key.kind)}
    if key.default is not REQUIRED and key.default is not None and not isinstance(key.kind, Section):
        schema["default"] = list(key.default) if isinstance(key.default, tuple) else key.default
    return schema


def json_schema() -> dict[str, Any]:
    """A JSON Schema of a stack file (`Pulumi.<stack>.yaml`): its `mesh:` keys; other namespaces free."""
    mesh = _schema_of(MESH)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "istio-mesh stack configuration (Pulumi.<stack>.yaml)",
        "type": "object",
        "properties": {
            "config": {
                "type": "object",
                "required": [ROOT + name for name in mesh["required"]],
                "properties": {ROOT + name: schema for name, schema in mesh["properties"].items()},
                "propertyNames": {"not": {"pattern": "^mesh:(?!(" + "|".join(k.name for k in MESH.keys) + ")$)"}},
            }
        },
    }


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def with_tables(document: str) -> str:
    """`document` with the text between the markers replaced by `config_tables()`."""
    head, _, rest = document.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{config_tables()}{END}{tail}"
