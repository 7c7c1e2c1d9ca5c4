"""`python -m mesh.config`: write the JSON Schema and the README's tables from the schema."""

import pathlib

from .docs import json_schema_text, with_tables

REPO = pathlib.Path(__file__).resolve().parents[2]

(REPO / "schema").mkdir(exist_ok=True)
(REPO / "schema" / "stack-config.schema.json").write_text(json_schema_text(), encoding="utf-8")
readme = REPO / "README.md"
readme.write_text(with_tables(readme.read_text(encoding="utf-8")), encoding="utf-8")
print("wrote schema/stack-config.schema.json and README.md's configuration tables")
