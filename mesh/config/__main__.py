"""`python -m mesh.config`: write the JSON Schema and docs/configuration.md's tables from the schema."""

import pathlib

from .docs import json_schema_text, with_tables

REPO = pathlib.Path(__file__).resolve().parents[2]

(REPO / "schema").mkdir(exist_ok=True)
(REPO / "schema" / "stack-config.schema.json").write_text(json_schema_text(), encoding="utf-8")
tables = REPO / "docs" / "configuration.md"
tables.write_text(with_tables(tables.read_text(encoding="utf-8")), encoding="utf-8")
print("wrote schema/stack-config.schema.json and docs/configuration.md's tables")
