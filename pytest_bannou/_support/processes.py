"""Process groups and run markers: how the plugin proves a process is one it started.

Every process the plugin starts on this machine (a local node replica, a tester) leads its own
session and process group and carries a *marker* in its environment: a variable whose value is
made for that one session or tester. A process is only ever signalled when it can be proven
ours: it still carries the marker with that value and its start time (``/proc/PID/stat`` field
22, clock ticks after boot) is the one recorded when it was spawned, or, for a descendant found
by its marker (a ``setsid`` grandchild left the group), not earlier than the recorded start of
what started it. Linux ``/proc`` where available, plain signals elsewhere. Shared by the local
backend (``backends.local.processes``) and the testers (``testers.process``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path


def signal_group(pgid: int, sig: int) -> None:
    if pgid <= 1:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (index 0 = state, field 3)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat: when the process started, in clock ticks after boot."""
    stat = proc_stat(pid)
    return stat[19] if stat else None


def has_proc() -> bool:
    return Path("/proc/self/environ").exists()


def live_groups(pgids: set[int]) -> set[int]:
    """Which of ``pgids`` still have a process that is not a zombie."""
    if not Path("/proc/self/stat").exists():
        alive = set()
        for pgid in pgids:
            try:
                os.killpg(pgid, 0)
                alive.add(pgid)
            except (ProcessLookupError, PermissionError):
                pass
        return alive
    alive = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = proc_stat(int(entry.name))
        if stat and stat[0] != "Z" and int(stat[2]) in pgids:
            alive.add(int(stat[2]))
    return alive


def _started_before(pid: int, not_before: str | None) -> bool:
    """Whether ``pid`` started before ``not_before`` (so it cannot be what we started then)."""
    if not not_before:
        return False
    started = start_time(pid)
    try:
        return started is None or int(started) < int(not_before)
    except ValueError:
        return True


def carries(pid: int, variable: str, value: str, not_before: str | None = None) -> bool:
    """Whether live process ``pid`` has ``variable=value`` in its environment (and, when
    ``not_before`` is given, did not start before that start time)."""
    if not value:
        return False
    marker = f"{variable}={value}".encode()
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    stat = proc_stat(pid)
    if not stat or stat[0] == "Z" or marker not in environ.split(b"\0"):
        return False
    return not _started_before(pid, not_before)


def marked(variable: str, value: str, not_before: str | None = None) -> list[int]:
    """Live processes carrying ``variable=value`` (ours, so safe to kill)."""
    if not value or not has_proc():
        return []
    return [
        int(e.name)
        for e in os.scandir("/proc")
        if e.name.isdigit() and carries(int(e.name), variable, value, not_before)
    ]


def kill_all_marked(
    variable: str, value: str, grace: float, exclude: Iterable[int] = (), not_before: str | None = None
) -> list[int]:
    """SIGTERM then (after ``grace`` seconds) SIGKILL every process carrying ``variable=value``,
    also descendants that left their process group; the PIDs signalled."""
    skip = set(exclude)
    pids = [p for p in marked(variable, value, not_before) if p not in skip]
    if not pids:
        return []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + grace
    while time.monotonic() < end and any(p in pids for p in marked(variable, value, not_before)):
        time.sleep(0.01)
    for pid in marked(variable, value, not_before):
        if pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    return pids


def marked_group_is_ours(pgid: int, variable: str, value: str, recorded_start: str | None) -> bool:
    """Whether process group ``pgid`` may be signalled: its leader still runs, carries
    ``variable=value`` and (when recorded) has the start time the state file names. Without
    ``/proc`` nothing can be proven, so only a live group of a known marker is accepted."""
    if pgid <= 1 or not value:
        return False
    if not has_proc():
        return bool(live_groups({pgid}))
    if not carries(pgid, variable, value):
        return False
    return recorded_start is None or start_time(pgid) == recorded_start
