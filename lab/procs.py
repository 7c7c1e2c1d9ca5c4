"""Starting and stopping the lab's background processes.

Each process gets its own session (and so its own process group), so that a
Ctrl-C in the shell that ran `lab up` does not take the clusters down, and so
that stopping it also stops anything it spawned. `lab down` usually runs in a
different Python process than `lab up`, so processes are identified by pid and
checked against their command line before being signalled: a recycled pid
must never be killed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def start(argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    if cwd is not None:
        cwd.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            cwd=cwd,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    # Popen (via vfork) may return while the kernel is still setting up the new
    # program, when /proc/PID/cmdline reads empty and `alive` would say no.
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and proc.poll() is None:
        if Path(f"/proc/{proc.pid}/cmdline").read_bytes():
            break
        time.sleep(0.005)
    return proc.pid


def _state(pid: int) -> str | None:
    """The /proc state letter of pid, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _reap(pid: int) -> None:
    # Only possible (and only needed) when the pid is our own child, i.e. the
    # Python API started and stops the lab in one process.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def alive(pid: int | None, marker: str) -> bool:
    """True if pid runs and its command line mentions `marker` (the lab dir)."""
    if not pid:
        return False
    _reap(pid)
    if _state(pid) in (None, "Z", "X"):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return marker.encode() in cmdline


def stop(pids: list[int], marker: str, timeout: float = 10.0) -> None:
    """SIGTERM the process groups of pids, SIGKILL whatever is left after timeout."""
    pids = [p for p in pids if alive(p, marker)]
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        for pid in pids:
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if alive(p, marker)]
            time.sleep(0.05)
        if not pids:
            return
    raise RuntimeError(f"processes {pids} survived SIGKILL")


def free_port(taken: set[int]) -> int:
    """A free loopback port below the kernel's ephemeral range.

    Below it, because a stopped apiserver must get its port back on restart: an
    ephemeral port could meanwhile be taken as the source port of some outgoing
    connection, a low one cannot.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    start = 20000 + (os.getpid() * 7919) % max(1, low - 20000)  # spread concurrent labs
    for i in range(low - 20000):
        port = 20000 + (start - 20000 + i) % (low - 20000)
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise RuntimeError("no free loopback port below the ephemeral range")
