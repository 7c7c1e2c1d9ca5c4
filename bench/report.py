"""One table for every figure: ours beside its floor (the same work without us) and the ratio."""

from __future__ import annotations

import datetime
import os
import platform
from dataclasses import dataclass
from typing import Optional, Sequence


@dataclass(frozen=True)
class Row:
    what: str
    ours: float
    floor: Optional[float] = None
    unit: str = "s"
    target: Optional[float] = None
    """The ratio we aim for at most (issue 11), shown beside the ratio; never asserted."""
    note: str = ""

    @property
    def ratio(self) -> Optional[float]:
        return self.ours / self.floor if self.floor else None


def _figure(value: Optional[float], unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("MiB", "req/s", "req"):
        return f"{value:,.0f} {unit}"
    return f"{value:.2f} {unit}".rstrip()


def machine() -> str:
    """This machine, named as docs/benchmark.md names it."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.node() or 'this machine'}: {os.cpu_count()} cores, {memory:.0f} GiB, {platform.system()}"


def render(rows: Sequence[Row], title: str) -> str:
    table = [["what", "ours", "floor", "ratio", "target", "note"]]
    for row in rows:
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
        target = f"<= {row.target:g}x" if row.target else ""
        table.append([row.what, _figure(row.ours, row.unit), _figure(row.floor, row.unit), ratio, target, row.note])
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = [f"{title} ({datetime.date.today().isoformat()}, {machine()})"]
    for index, cells in enumerate(table):
        lines.append(
            "  ".join(c.ljust(w) if i in (0, 5) else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        )
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def markdown(rows: Sequence[Row]) -> str:
    """The same rows as a Markdown table, for docs/benchmark.md."""
    lines = ["| what | ours | floor | ratio | target |", "|---|---|---|---|---|"]
    for row in rows:
        ratio = f"{row.ratio:.2f}×" if row.ratio is not None else "–"
        target = f"≤ {row.target:g}×" if row.target else ""
        lines.append(
            f"| {row.what} | {_figure(row.ours, row.unit)} | {_figure(row.floor, row.unit)} | {ratio} | {target} |"
        )
    return "\n".join(lines)
