"""A Pulumi program with no logic of its own: it registers, bare, every resource a stack's state
lists (`state.json` beside it, from `pulumi stack export --show-secrets`), with the same URNs,
inputs, secrets, providers and dependencies, and exports the same outputs.

Its no-op `preview` of that stack is the floor of any program that manages those resources: what
the engine and the providers cost for them, with no config reading, planning, or graph building.
`bench/up.py` copies this file into a temporary project as its `__main__.py`.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pulumi

from bench.stack_objects import from_state  # `bench` is linked into the replay's project

# Neither is a resource the stack manages: the engine's own provider, and the mesh program's
# read of its own last outputs.
NOT_MANAGED = {"pulumi:providers:pulumi", "pulumi:pulumi:StackReference", "pulumi:pulumi:Stack"}


def value(state_value: Any) -> Any:
    """A value from the state as a program input: a secret stays a secret."""
    return from_state(state_value, pulumi.Output.secret)


def name_of(urn: str) -> str:
    return urn.split("::")[-1]


def main() -> None:
    state = json.loads((pathlib.Path(__file__).parent / "state.json").read_text(encoding="utf-8"))
    made: dict[str, pulumi.Resource] = {}
    providers: dict[str, pulumi.ProviderResource] = {}
    for entry in state["deployment"]["resources"]:
        kind, urn = entry["type"], entry["urn"]
        if kind == "pulumi:pulumi:Stack":
            for key, output in (entry.get("outputs") or {}).items():
                pulumi.export(key, value(output))
        if kind in NOT_MANAGED or entry.get("delete"):
            continue
        inputs = entry.get("inputs") or {}
        opts = pulumi.ResourceOptions(
            parent=made.get(entry.get("parent", "")),
            depends_on=[made[d] for d in entry.get("dependencies", []) if d in made],
        )
        if kind.startswith("pulumi:providers:"):
            if name_of(urn).startswith("default"):
                continue  # the engine makes default providers itself
            package = kind.split(":")[2]
            opts.version = inputs.get("version")
            made[urn] = providers[f"{urn}::{entry['id']}"] = pulumi.ProviderResource(
                package, name_of(urn), value(inputs), opts
            )
        elif entry.get("custom"):
            provider = entry.get("provider", "")
            if provider in providers:
                opts.provider = providers[provider]
            else:  # a default provider: default_<version with underscores>
                opts.version = name_of(provider.rsplit("::", 1)[0]).removeprefix("default_").replace("_", ".")
            made[urn] = pulumi.CustomResource(kind, name_of(urn), value(inputs), opts)
        else:
            made[urn] = pulumi.ComponentResource(kind, name_of(urn), None, opts)


main()
