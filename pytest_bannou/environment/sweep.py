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

No pytest here: ``pytest_bannou.plugin.sweep`` runs the sweep at session start and cleans up
after crashed xdist workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .._support.files import atomic_write
from .._support.pids import pid_alive
from ..backends.base import LABEL_RUN_ID, BackendOptions
from .runs import RUN_INFO, ensure_run_directory, read_run_info, run_directory, runs_root

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


# --- finding dead run ids per backend ------------------------------------------------------
def local_dead_runs() -> set[str]:
    from ..backends.local import backend as local

    found = set()
    for path in local.state_index_dir().glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        rid = str(data.get("run_id") or "")
        if rid and not local._owner_alive(data):
            found.add(rid)
    return found


def docker_dead_runs() -> set[str]:
    from ..backends.docker import engine as _docker

    cli = _docker.client()
    try:
        flt = {"label": LABEL_RUN_ID}
        labelled: list[dict[str, str]] = [c.labels for c in cli.containers.list(all=True, filters=flt)]
        labelled += [n.attrs.get("Labels") or {} for n in cli.networks.list(filters=flt)]
        labelled += [v.attrs.get("Labels") or {} for v in cli.volumes.list(filters=flt)]
        with contextlib.suppress(Exception):  # not a swarm manager: no services
            labelled += [s.attrs.get("Spec", {}).get("Labels") or {} for s in cli.services.list(filters=flt)]
    finally:
        cli.close()
    return {labels[LABEL_RUN_ID] for labels in labelled if not _docker.owner_alive(labels)}


FINDERS: dict[str, Callable[[], set[str]]] = {
    "local": local_dead_runs,
    "compose": docker_dead_runs,
    "swarm": docker_dead_runs,
}


def sweep(backends: Iterable[str], say: Callable[[str], None] | None = None) -> list[str]:
    """Remove the resources of dead sessions on ``backends`` (canonical names); return (and
    ``say``) one line per removed resource. Backends that cannot run here are skipped; backends
    without a finder here fall back to their own ``clean(None)`` when no run is kept."""
    from ..backends import registry

    removed: list[str] = []
    for name in dict.fromkeys(backends):
        if not registry.availability(name):
            continue
        cls = registry.load(name)
        finder = FINDERS.get(name)
        try:
            if finder is None:
                if not any(info.get("kept") for _d, info in _run_records()):
                    lines = [f"{name}: {line}" for line in cls.clean(None)]
                    removed += _tell(lines, say)
                continue
            for run_id in sorted(finder()):
                if spared(run_id) is not None:
                    continue
                options = BackendOptions(run_id=run_id, workdir=run_directory(run_id))
                lines = [f"run {run_id} ({name}): {line}" for line in cls.clean(run_id, options)]
                lines += _remove_run_directory(run_id)
                removed += _tell(lines, say)
        except Exception as exc:  # a sweep problem must not stop the session: say it
            removed += _tell([f"{name}: sweep failed: {type(exc).__name__}: {exc}"], say)
    return removed


def _tell(lines: list[str], say: Callable[[str], None] | None) -> list[str]:
    if say is not None:
        for line in lines:
            say(line)
    return lines


def _run_records() -> list[tuple[Path, dict[str, Any]]]:
    root = runs_root()
    out = []
    for d in sorted(root.glob("bannou-*")) if root.is_dir() else []:
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

    if registry.canonical(request) == "auto":
        return [n for n in registry.AUTO_ORDER if registry.availability(n)]
    return [registry.canonical(request)]
