"""Tracked process groups: what a session started outside any backend (a tester), recorded so
that the session removes it at the end and the sweep removes it after the session died.

A tracked process group leads its own session, carries ``MARKER_ENV`` (a value made for it
alone) and is listed in a state file (0600, in ``TRACKED_DIR`` of the run directory): kind and
name, run id, marker, owner PID and start time, the group's PID and start time. ``stop`` signals
the group only while its leader carries the marker and the recorded start time, then every
process still carrying the marker that did not start before the group (a ``setsid`` grandchild
left the group, not the marker). ``sweep`` does that for each state file whose owner is gone and
that this user wrote.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .files import atomic_write
from .pids import pid_alive
from .processes import kill_all_marked, live_groups, marked_group_is_ours, signal_group, start_time

MARKER_ENV = "PYTEST_BANNOU_TESTER_SESSION"  # in every process a tester starts
TRACKED_DIR = "tracked"  # under a run directory: one state file per running tester
GRACE = 3.0  # SIGTERM -> SIGKILL
# what ``new_marker`` makes: a planted state file cannot name another variable or a short value
MARKER_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,100}\.[0-9a-f]{32}")


def new_marker(run_id: str = "") -> str:
    """A marker value for one tracked group: never made twice."""
    prefix = re.sub(r"[^A-Za-z0-9_.-]", "-", run_id)[:60] or "bannou"
    return f"{prefix}.{os.getpid()}.{uuid.uuid4().hex}"


def write(path: Path, data: Mapping[str, Any]) -> None:
    """Write a state file atomically, readable by this user only (in a 0700 directory)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, json.dumps(dict(data), indent=1))


def record(kind: str, name: str, run_id: str, marker: str) -> dict[str, Any]:
    """A state file's content before the group starts (``pgid`` 0 until it does)."""
    return {
        "kind": kind,
        "name": name,
        "run_id": run_id,
        "marker_env": MARKER_ENV,
        "marker": marker,
        "owner_pid": os.getpid(),
        "owner_start": start_time(os.getpid()),
        "pgid": 0,
        "start": None,
    }


def read(path: Path) -> dict[str, Any] | None:
    """A state file's content, or None when this user's session did not write it (another
    owner, no marker of ours, not JSON)."""
    try:
        if path.is_symlink() or path.stat().st_uid != os.getuid():
            return None
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not MARKER_PATTERN.fullmatch(str(data.get("marker") or "")):
        return None
    return data


def owner_alive(data: Mapping[str, Any]) -> bool:
    try:
        pid = int(data.get("owner_pid") or 0)
    except (TypeError, ValueError):
        return False
    if not pid_alive(pid):
        return False
    recorded = data.get("owner_start")
    return recorded is None or start_time(pid) in (None, str(recorded))


def stop(data: Mapping[str, Any], grace: float = GRACE) -> list[str]:
    """Stop what a state file lists, proven ours only (see the module docstring); one line per
    thing stopped."""
    marker = str(data.get("marker") or "")
    what = f"{data.get('kind') or 'process'} {data.get('name') or '?'}"
    try:
        pgid = int(data.get("pgid") or 0)
    except (TypeError, ValueError):
        pgid = 0
    start = str(data["start"]) if data.get("start") is not None else None
    lines = []
    if pgid and start and marked_group_is_ours(pgid, MARKER_ENV, marker, start):
        signal_group(pgid, signal.SIGTERM)
        end = time.monotonic() + grace
        while time.monotonic() < end and live_groups({pgid}):
            time.sleep(0.01)
        signal_group(pgid, signal.SIGKILL)
        lines.append(f"stopped {what} (process group {pgid})")
    # descendants that left the group: the marker, and not older than the group (or the owner)
    not_before = start or (str(data["owner_start"]) if data.get("owner_start") is not None else None)
    for pid in kill_all_marked(MARKER_ENV, marker, grace, exclude={os.getpid()}, not_before=not_before):
        if pid != pgid:
            lines.append(f"killed leftover process {pid} of {what}")
    return lines


def sweep(directory: Path, grace: float = GRACE, *, owner_gone: bool = True) -> list[str]:
    """Stop and forget the tracked groups in ``directory`` whose owning session is gone (every
    group, with ``owner_gone=False``: the run itself is being removed)."""
    lines: list[str] = []
    for path in sorted(directory.glob("*.json")):
        data = read(path)
        if data is None or (owner_gone and owner_alive(data)):
            continue
        lines += stop(data, grace)
        with contextlib.suppress(OSError):
            path.unlink()
    return lines
