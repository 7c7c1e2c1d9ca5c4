"""Every relative link of README.md and docs/*.md leads somewhere: its file exists and, with a
`#anchor`, that file has a heading of that anchor (GitHub's slugs). No network: links with a
scheme (https:, mailto:) are not followed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import REPO

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.M)


def anchors(document: Path) -> set[str]:
    """GitHub's anchors: lowercase, punctuation but '-' and '_' dropped, spaces to '-', repeats numbered."""
    found: set[str] = set()
    for title in HEADING.findall(FENCE.sub("", document.read_text(encoding="utf-8"))):
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        n, candidate = 0, slug
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def links(document: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", document.read_text(encoding="utf-8")))


def test_there_are_docs_and_the_readme_links_each():
    named = {target.split("#")[0] for target in links(REPO / "README.md")}
    assert len(DOCUMENTS) > 5
    assert {f"docs/{d.name}" for d in DOCUMENTS[1:]} <= named


@pytest.mark.parametrize("document", DOCUMENTS, ids=[d.name for d in DOCUMENTS])
def test_every_relative_link_resolves(document):
    broken = []
    for target in links(document):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (document.parent / path).resolve() if path else document
        if not file.exists():
            broken.append(f"{target}: no {file.relative_to(REPO) if file.is_relative_to(REPO) else file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.name}")
    assert broken == [], f"{document.name}: {broken}"
