"""Peak memory of a command's process tree, by role: the engine, the language host, the
program, each provider plugin. Sampled from /proc while the command runs (Linux)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence


def role(cmdline: Sequence[str]) -> str:
    """What a process of a Pulumi run is, from its command line."""
    program = os.path.basename(cmdline[0]) if cmdline else "?"
    if program.startswith("pulumi-resource-"):
        return "provider " + program[len("pulumi-resource-") :]
    if program.startswith("pulumi-language-"):
        return "language host"
    if program == "pulumi":
        return "engine"
    if "python" in program:
        return "program (python)"
    return program


def _children(pid: int) -> list[int]:
    """Children of every thread of `pid` (a Go program starts its children from any thread)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as handle:
                found.extend(int(p) for p in handle.read().split())
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it."""
    stack, found = [pid], []
    while stack:
        current = stack.pop()
        found.append(current)
        stack += _children(current)
    return found


def _proc_kib(pid: int, file: str, key: str) -> int:
    """A `key:` line's figure (kB) from /proc/<pid>/<file>; 0 for a process gone meanwhile."""
    try:
        with open(f"/proc/{pid}/{file}", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mib(pid: int) -> float:
    return _proc_kib(pid, "status", "VmRSS") / 1024


def pss_mib(pid: int) -> float:
    """Proportional set size: pages shared by several processes (a binary they all run) counted once."""
    return _proc_kib(pid, "smaps_rollup", "Pss") / 1024


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return [part.decode(errors="replace") for part in handle.read().split(b"\0") if part]
    except OSError:
        return []


@dataclass
class Peaks:
    """Per role: the peak of the role's summed RSS, the largest single process, how many ran."""

    total: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    largest: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    count: dict[str, set] = field(default_factory=lambda: defaultdict(set))
    whole: float = 0.0
    """Peak of the whole tree's RSS at one moment."""

    def sample(self, root: int) -> None:
        sums: dict[str, float] = defaultdict(float)
        whole = 0.0
        for pid in descendants(root):
            rss, argv = rss_mib(pid), cmdline(pid)
            if not argv:  # gone between listing and reading
                continue
            name = role(argv)
            sums[name] += rss
            whole += rss
            self.largest[name] = max(self.largest[name], rss)
            self.count[name].add(pid)
        for name, value in sums.items():
            self.total[name] = max(self.total[name], value)
        self.whole = max(self.whole, whole)


@dataclass(frozen=True)
class Run:
    seconds: float
    peaks: Peaks
    stdout: str
    stderr: str


def run(argv: Sequence[str], env: Mapping[str, str], cwd: Optional[str] = None, interval: float = 0.05) -> Run:
    """Run `argv` to its end, timing it and sampling its process tree's memory; raise on failure."""
    peaks = Peaks()
    started = time.monotonic()
    process = subprocess.Popen(argv, env=dict(env), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = threading.Event()

    def sampler() -> None:
        while not done.is_set():
            peaks.sample(process.pid)
            done.wait(interval)

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    stdout, stderr = process.communicate()
    seconds = time.monotonic() - started
    done.set()
    thread.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({process.returncode}):\n{stdout[-3000:]}\n{stderr[-3000:]}")
    return Run(seconds, peaks, stdout, stderr)


def _busy_and_total() -> tuple[int, int]:
    with open("/proc/stat", encoding="ascii") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def wait_until_quiet(busy_below: float = 0.25, window: float = 2.0, limit: float = 120.0) -> float:
    """Wait until the machine's CPUs are busy less than `busy_below` of the time over `window`
    seconds (a lab settling after `up`: istiods starting, stand-ins reconciling), at most
    `limit` seconds; returns how long it waited. Real clusters do not share the CPUs of the
    machine that runs `pulumi`: a no-op measured on a settling lab measures the lab."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        busy0, total0 = _busy_and_total()
        time.sleep(window)
        busy1, total1 = _busy_and_total()
        if total1 > total0 and (busy1 - busy0) / (total1 - total0) < busy_below:
            break
    return time.monotonic() - started
