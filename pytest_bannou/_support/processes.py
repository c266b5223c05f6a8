"""Process groups and run markers: how the plugin proves a process is one it started.

Every process the plugin starts on this machine (a local node replica, a tester) leads its own
session and process group and carries a *marker* in its environment: a variable whose value is
made for that one session or tester. A process is only ever signalled when it can be proven
ours: it still carries the marker with that value and its start time is the one recorded when
it was spawned, or, for a descendant found by its marker (a ``setsid`` grandchild left the
group), not earlier than the recorded start of what started it. Environments, start times and
states come from ``psutil`` (Linux, macOS, the BSDs); process groups from ``os.getpgid``.
Shared by the local backend (``backends.local.processes``) and the testers (``testers.process``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterable

import psutil

_LINUX = sys.platform.startswith("linux")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if _LINUX else 100


def signal_group(pgid: int, sig: int) -> None:
    if pgid <= 1:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except (psutil.Error, ValueError, OverflowError):
        return None


def is_zombie(pid: int) -> bool:
    """Whether ``pid`` is a zombie (gone, or not yet reaped); False when it cannot be told."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, ValueError, OverflowError):
        return False


def start_time(pid: int) -> str | None:
    """When ``pid`` started, as recorded in state files. On Linux the clock ticks after boot
    (``/proc/PID/stat`` field 22, the value earlier versions recorded): unlike a wall-clock time
    it does not move when the system clock is set. Elsewhere psutil's creation time."""
    for _ in range(3):
        boot = psutil.boot_time() if _LINUX else 0.0
        process = _process(pid)
        if process is None:
            return None
        try:
            created = process.create_time()
        except psutil.Error:
            return None
        if not _LINUX:
            return f"{created:.6f}"
        if psutil.boot_time() == boot:  # the clock was not set between: the ticks are exact
            return str(round((created - boot) * _CLOCK_TICKS))
    return None


def live_groups(pgids: set[int]) -> set[int]:
    """Which of ``pgids`` still have a process that is not a zombie."""
    alive: set[int] = set()
    if not pgids:
        return alive
    for process in psutil.process_iter():
        try:
            pgid = os.getpgid(process.pid)
            if pgid in pgids and pgid not in alive and process.status() != psutil.STATUS_ZOMBIE:
                alive.add(pgid)
        except (psutil.Error, OSError):
            continue
    return alive


def _started_before(pid: int, not_before: str | None) -> bool:
    """Whether ``pid`` started before ``not_before`` (so it cannot be what we started then)."""
    if not not_before:
        return False
    started = start_time(pid)
    try:
        return started is None or float(started) < float(not_before)
    except ValueError:
        return True


def carries(pid: int, variable: str, value: str, not_before: str | None = None) -> bool:
    """Whether live process ``pid`` has ``variable=value`` in its environment (and, when
    ``not_before`` is given, did not start before that start time)."""
    if not value:
        return False
    process = _process(pid)
    if process is None:
        return False
    try:
        if process.environ().get(variable) != value or process.status() == psutil.STATUS_ZOMBIE:
            return False
    except psutil.Error:  # gone, or another user's
        return False
    return not _started_before(pid, not_before)


def marked(variable: str, value: str, not_before: str | None = None) -> list[int]:
    """Live processes carrying ``variable=value`` (ours, so safe to kill)."""
    if not value:
        return []
    return [p for p in psutil.pids() if carries(p, variable, value, not_before)]


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
    ``variable=value`` and (when recorded) has the start time the state file names."""
    if pgid <= 1 or not value:
        return False
    if not carries(pgid, variable, value):
        return False
    return recorded_start is None or start_time(pgid) == recorded_start
