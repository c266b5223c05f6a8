"""State files of the local backend: what a session started, so a later one can remove it.

A session writes its state file (0600) to its run directory and to a machine-wide index
(``state_index_dir``, 0700): run id, backend session marker, owner PID and start time, and per
replica its PID, process group, start time, ports and log. ``clean`` reads them back and trusts
only files written by this user that name a session; it signals only process groups whose leader
still carries that session's marker and recorded start time (see ``processes.group_is_ours``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..._support.files import atomic_write
from ..._support.pids import pid_alive
from ...errors import DeployError
from . import processes

STATE_DIR_ENV = "BANNOU_LOCAL_STATE_DIR"  # overrides the machine-wide index directory
DEFAULT_GRACE = 3.0


def state_index_dir() -> Path:
    """Where every local session registers its state file, so ``clean`` finds them all."""
    override = os.environ.get(STATE_DIR_ENV)
    if override:
        return Path(override)
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"pytest-bannou-{os.getuid()}" / "local-state"


def write_state(data: Mapping[str, Any], paths: Iterable[Path]) -> None:
    """Write ``data`` to each path atomically, readable by this user only."""
    raw = json.dumps(dict(data), indent=1).encode()
    for path in paths:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(path, raw)


def read_state(path: Path) -> dict[str, Any] | None:
    """A state file's content, or None when it is not one this user's session wrote (another
    owner, no ``session`` marker, not JSON)."""
    try:
        if path.stat().st_uid != os.getuid():
            return None
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("session"), str) or not data["session"]:
        return None
    return data


def owner_alive(data: Mapping[str, Any]) -> bool:
    pid = int(data.get("owner_pid") or 0)
    if not pid_alive(pid):
        return False
    recorded = data.get("owner_start")
    return recorded is None or processes.start_time(pid) in (None, recorded)


def dead_runs() -> set[str]:
    """Run ids of state files whose owning session is gone."""
    found = set()
    for path in state_index_dir().glob("*.json"):
        data = read_state(path)
        if data is None:
            continue
        rid = str(data.get("run_id") or "")
        if rid and not owner_alive(data):
            found.add(rid)
    return found


def clean(run_id: str | None, extra: Iterable[Path] = ()) -> list[str]:
    """Stop what the state files of ``run_id`` (or of every dead session) list and remove the
    files; one line per removed thing."""
    candidates = [*state_index_dir().glob("*.json"), *extra]
    removed: list[str] = []
    seen: set[Path] = set()
    for path in candidates:
        if path in seen or not path.exists():
            continue
        seen.add(path)
        data = read_state(path)
        if data is None:
            continue
        if run_id is not None and data.get("run_id", "") != run_id:
            continue
        if run_id is None and owner_alive(data):
            continue
        removed += clean_session(data)
        for p in dict.fromkeys(
            [path, Path(data.get("state_file", path)), Path(data.get("index_file", path))]
        ):
            seen.add(p)
            with contextlib.suppress(FileNotFoundError):
                if p.stat().st_uid == os.getuid():
                    p.unlink()
                    removed.append(f"local: removed state file {p}")
    return removed


def clean_session(data: Mapping[str, Any]) -> list[str]:
    """Stop what a session's state file lists: only process groups whose leader still carries
    the session's marker and recorded start time (a recycled PID is never signalled), then
    stray processes carrying the marker."""
    run_id = data.get("run_id", "")
    session = str(data.get("session") or "")
    if not session:
        return []
    targets = []
    for rep in data.get("replicas", []):
        try:
            pgid = int(rep.get("pgid") or 0)
        except (TypeError, ValueError):
            continue
        start = rep.get("start")
        if processes.group_is_ours(pgid, session, str(start) if start is not None else None):
            targets.append((pgid, rep))
    for pgid, _ in targets:
        processes.signal_group(pgid, signal.SIGTERM)
    end = time.monotonic() + DEFAULT_GRACE
    while time.monotonic() < end and processes.live_groups({pgid for pgid, _ in targets}):
        time.sleep(0.01)
    lines = []
    for pgid, rep in targets:
        processes.signal_group(pgid, signal.SIGKILL)
        lines.append(
            f"local: stopped node {rep.get('node')} replica {rep.get('replica')} "
            f"(process group {pgid}) of run {run_id}"
        )
    for pid in processes.kill_marked(session, DEFAULT_GRACE, exclude={os.getpid()}):
        lines.append(f"local: killed leftover process {pid} of run {run_id}")
    return lines


def kept_state(rundir: Path, run_id: str, preset: str) -> dict[str, Any]:
    """The newest state file of run ``run_id`` in its run directory (``DeployError`` when there is
    none): what ``LocalBackend.reattach`` adopts."""
    found = [
        (path.stat().st_mtime, data)
        for path in sorted(rundir.glob("state*.json"))
        if (data := read_state(path)) is not None and data.get("run_id") == run_id
    ]
    if not found:
        raise DeployError(
            f"local backend: run {run_id} has no state file in {rundir}: its processes"
            f" cannot be found (preset {preset!r}); remove it with"
            f" `bannou-env clean --run-id {run_id}` and deploy it again"
        )
    return max(found, key=lambda f: f[0])[1]


def file_within(path: object, directory: Path) -> Path | None:
    """``path`` when it names a JSON file directly in ``directory``, else None (a state file
    never names another place)."""
    if not isinstance(path, str) or not path:
        return None
    p = Path(path)
    return p if p.parent == directory and p.name.endswith(".json") else None
