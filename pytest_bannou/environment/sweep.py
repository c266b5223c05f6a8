"""The stale-resource sweep: what SIGKILLed sessions left behind is removed by the next one.

A session killed with SIGKILL cannot tear down. Its resources still carry its run id (labels on
containers, networks, volumes and services; state files listing the local backend's process
groups) and the PID of the process that owned them. At session start the sweep looks, for the
backends the session uses, for run ids whose owner is gone, and removes them through the
backend's ``clean(run_id)``, printing one line per removed resource.

Spared: environments kept on purpose (``--bannou-keep``, ``bannou-env deploy``: their run record
says ``kept``) and runs whose run directory holds an ``owner.pid`` naming a live process (an
xdist controller owns the shared environments its workers deployed; see ``sharing``).
``bannou-env clean --all-stale`` runs the same sweep for every available backend.

Testers are not a backend's: a tester process (and what it started, also outside its process
group) is listed in a state file in its run directory's ``tracked/`` (``_support.tracked``). The
sweep first stops those whose owning session is gone, whatever backend the run used and whether
or not the run is kept: a tester never outlives its session.

No pytest here: ``pytest_bannou.plugin.sweep`` runs the sweep at session start and cleans up
after crashed xdist workers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .._support import tracked
from .._support.files import atomic_write
from .._support.pids import pid_alive
from ..backends.base import BackendOptions
from .runs import (
    RUN_ID_PATTERN,
    RUN_INFO,
    ensure_run_directory,
    read_run_info,
    run_directories,
    run_directory,
)

OWNER_FILE = "owner.pid"


def write_owner(run_id: str, pid: int | None = None) -> Path:
    """Mark ``run_id`` as owned by ``pid`` (default: this process) for as long as it lives."""
    path = ensure_run_directory(run_directory(run_id)) / OWNER_FILE
    atomic_write(path, str(pid or os.getpid()))
    return path


def spared(run_id: str) -> str | None:
    """Why ``run_id`` must not be swept (kept, or owned by a live process), or None."""
    workdir = run_directory(run_id)
    info = read_run_info(workdir) or {}
    if info.get("kept"):
        return "kept"
    if pid_alive(int(info.get("owner_pid") or 0)):
        return "its session still runs"
    try:
        owner = int((workdir / OWNER_FILE).read_text().strip() or 0)
    except (OSError, ValueError):
        owner = 0
    if pid_alive(owner):
        return f"owned by live process {owner}"
    return None


def sweep(backends: Iterable[str], say: Callable[[str], None] | None = None) -> list[str]:
    """Remove the resources of dead sessions on ``backends`` (canonical names); return (and
    ``say``) one line per removed resource. Backends that cannot run here are skipped; backends
    that cannot name dead runs (``Backend.dead_runs`` is None) fall back to their own
    ``clean(None)`` when no run is kept."""
    from ..backends import registry

    removed = sweep_tracked(say)
    for name in dict.fromkeys(backends):
        if not registry.availability(name):
            continue
        cls = registry.load(name)
        try:
            dead = cls.dead_runs()
            if dead is None:
                if not any(info.get("kept") for _d, info in _run_records()):
                    lines = [f"{name}: {line}" for line in cls.clean(None)]
                    removed += _tell(lines, say)
                continue
            for run_id in sorted(dead):
                if not RUN_ID_PATTERN.fullmatch(run_id) or spared(run_id) is not None:
                    continue  # not a run id this plugin makes (a planted label or state file): never ours
                options = BackendOptions(run_id=run_id, workdir=run_directory(run_id))
                lines = [f"run {run_id} ({name}): {line}" for line in cls.clean(run_id, options)]
                lines += _remove_run_directory(run_id)
                removed += _tell(lines, say)
        except Exception as exc:  # a sweep problem must not stop the session: say it
            removed += _tell([f"{name}: sweep failed: {type(exc).__name__}: {exc}"], say)
    return removed


def sweep_tracked(say: Callable[[str], None] | None = None) -> list[str]:
    """Stop the testers (tracked process groups) of dead sessions in every run directory."""
    removed: list[str] = []
    try:
        for d in run_directories():
            lines = tracked.sweep(d / tracked.TRACKED_DIR)
            removed += _tell([f"run {d.name}: {line}" for line in lines], say)
    except Exception as exc:  # a sweep problem must not stop the session: say it
        removed += _tell([f"testers: sweep failed: {type(exc).__name__}: {exc}"], say)
    return removed


def stop_run_testers(run_id: str) -> list[str]:
    """Stop every tracked tester of one run (``clean --run-id``, a crashed xdist worker), also
    when the session that started it is still alive: its run is being removed."""
    return [
        f"run {run_id}: {line}"
        for line in tracked.sweep(run_directory(run_id) / tracked.TRACKED_DIR, owner_gone=False)
    ]


def _tell(lines: list[str], say: Callable[[str], None] | None) -> list[str]:
    if say is not None:
        for line in lines:
            say(line)
    return lines


def _run_records() -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for d in run_directories():
        info = read_run_info(d)
        if info is not None:
            out.append((d, info))
    return out


def _remove_run_directory(run_id: str) -> list[str]:
    d = run_directory(run_id)
    if not d.is_dir() or (read_run_info(d) or {}).get("kept"):
        return []
    with contextlib.suppress(OSError):
        (d / RUN_INFO).unlink()
    shutil.rmtree(d, ignore_errors=True)
    return [f"removed run directory {d}"]


def backends_in_use(request: str) -> list[str]:
    """Canonical backend names a session with ``--bannou-backend=request`` may deploy on."""
    from ..backends import registry

    return registry.in_use(request)
