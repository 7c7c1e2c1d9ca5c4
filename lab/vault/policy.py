"""Vault ACL policies for the lab's Vault stand-in (lab/vault/server.py): the HCL subset it reads and
how a token's policies decide a request.

The subset: any number of `path "<pattern>" { capabilities = ["read", ...] }` blocks, with `#`,
`//` and `/* */` comments. A pattern may end in `*` (a prefix glob) and may hold `+` for exactly
one path segment, as in Vault. Anything else a Vault policy may say (`allowed_parameters`,
`denied_parameters`, `required_parameters`, `min_wrapping_ttl`, the old `policy = "write"`) is
refused by name rather than ignored: the stand-in would not enforce it.

Deciding a request follows Vault's vault/acl.go: the rules of all the token's policies are merged
per pattern (capabilities added up; `deny` wins), an exact pattern beats every wildcard one, and
among wildcard patterns the most specific wins by Vault's priority rules (the policy concepts
page, "Priority matching"): the first wildcard later in the path, then not ending in `*`, then
fewer `+`, then longer, then lexicographically larger. Only that one rule's capabilities count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CAPABILITIES = ("create", "read", "update", "patch", "delete", "list", "sudo", "deny", "subscribe", "recover")

# A subset of Vault's built-in `default` policy (vault/policy_store.go): the token's own
# lookup and renewal. The stand-in serves none of these paths; the policy exists, as in Vault,
# because every token but root carries it.
DEFAULT_POLICY = """\
# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}
"""

_TOKEN = re.compile(
    r"""\s+|\#[^\n]*|//[^\n]*|/\*.*?\*/   # space and comments
    |(?P<string>"(?:[^"\\]|\\.)*")
    |(?P<word>[A-Za-z_][A-Za-z0-9_-]*)
    |(?P<punct>[{}\[\]=,])""",
    re.S | re.X,
)


class PolicyError(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, str]]:
    found, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            line = text.count("\n", 0, pos) + 1
            raise PolicyError(f"line {line}: unexpected {text[pos : pos + 20]!r}")
        pos = match.end()
        for kind in ("string", "word", "punct"):
            if match.group(kind) is not None:
                value = match.group(kind)
                if kind == "string":
                    value = re.sub(r"\\(.)", r"\1", value[1:-1])
                found.append((kind, value))
    return found


def parse(text: str) -> dict[str, set[str]]:
    """The policy's rules: pattern -> capabilities."""
    tokens, pos = _tokens(text), 0
    rules: dict[str, set[str]] = {}

    def peek() -> tuple[str, str] | None:
        return tokens[pos] if pos < len(tokens) else None

    def take(kind: str, value: str | None = None) -> str:
        nonlocal pos
        if pos >= len(tokens) or tokens[pos][0] != kind or (value is not None and tokens[pos][1] != value):
            got = tokens[pos][1] if pos < len(tokens) else "the end"
            raise PolicyError(f"expected {value or kind}, got {got!r}")
        pos += 1
        return tokens[pos - 1][1]

    while pos < len(tokens):
        keyword = take("word")
        if keyword != "path":
            raise PolicyError(f"{keyword!r} blocks are not supported by the lab's Vault stand-in (only `path`)")
        pattern = take("string").lstrip("/")
        take("punct", "{")
        capabilities: set[str] = set()
        while peek() not in (("punct", "}"), None):
            name = take("word")
            if name != "capabilities":
                raise PolicyError(f'path "{pattern}": {name!r} is not supported by the lab\'s Vault stand-in')
            take("punct", "=")
            take("punct", "[")
            while peek() != ("punct", "]"):
                capability = take("string").lower()
                if capability not in CAPABILITIES:
                    raise PolicyError(f'path "{pattern}": invalid capability {capability!r}')
                capabilities.add(capability)
                if peek() == ("punct", ","):
                    pos += 1
            take("punct", "]")
        take("punct", "}")
        rules.setdefault(pattern, set()).update(capabilities)
    return rules


def _matches(pattern: str, path: str) -> bool:
    glob = pattern.endswith("*")
    body = pattern[:-1] if glob else pattern
    regex = "/".join("[^/]+" if segment == "+" else re.escape(segment) for segment in body.split("/"))
    return re.fullmatch(regex + (".*" if glob else ""), path, re.S) is not None


def _specificity(pattern: str) -> tuple:
    """Higher wins among wildcard patterns (Vault's priority matching)."""
    wildcards = [i for i, ch in enumerate(pattern) if ch in "+*"]
    return (
        wildcards[0] if wildcards else len(pattern),
        not pattern.endswith("*"),
        -pattern.count("+"),
        len(pattern),
        pattern,
    )


@dataclass(frozen=True)
class Acl:
    rules: dict[str, frozenset[str]]
    root: bool = False

    @classmethod
    def of(cls, policies: list[dict[str, set[str]]], root: bool = False) -> "Acl":
        merged: dict[str, set[str]] = {}
        for rules in policies:
            for pattern, capabilities in rules.items():
                merged.setdefault(pattern, set()).update(capabilities)
        return cls({p: frozenset({"deny"} if "deny" in c else c) for p, c in merged.items()}, root)

    def capabilities(self, path: str) -> frozenset[str]:
        """What the token may do on path (a request path without /v1/)."""
        if self.root:
            return frozenset({"root"})
        if path in self.rules:
            return self.rules[path]
        wild = [p for p in self.rules if ("*" in p or "+" in p) and _matches(p, path)]
        return self.rules[max(wild, key=_specificity)] if wild else frozenset()

    def allows(self, path: str, capability: str, sudo: bool = False) -> bool:
        granted = self.capabilities(path)
        if "root" in granted:
            return True
        if "deny" in granted or capability not in granted:
            return False
        return not sudo or "sudo" in granted
