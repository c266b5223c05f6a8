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

No pytest import at module level; ``SweepPlugin`` is registered by the pytest glue.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pluggy

from .._support.pids import pid_alive
from ..backends.base import BackendOptions
from .manager import RUN_INFO, read_run_info, run_directory, runs_root

hookimpl = pluggy.HookimplMarker("pytest")
OWNER_FILE = "owner.pid"
WORKER_RUN_ID = "bannou_run_id"  # workerinput key: the run id the controller gave a worker


def write_owner(run_id: str, pid: int | None = None) -> Path:
    """Mark ``run_id`` as owned by ``pid`` (default: this process) for as long as it lives."""
    path = run_directory(run_id) / OWNER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(pid or os.getpid()))
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

    removed: list[str] = []
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

    return registry.in_use(request)


class SweepPlugin:
    """Sweeps before the first deployment of a session (registered as ``bannou-sweep``)."""

    def __init__(self, config: Any, session: Any) -> None:
        self.config = config
        self.session = session
        self.done = False
        self.worker_runs: dict[str, str] = {}  # xdist worker id -> the run id it was given

    # --- xdist controller: worker run ids, crashed workers ---------------------------------
    @hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Pick each worker's run id here, so a worker that dies can still be cleaned up."""
        from .manager import new_run_id

        run_id = new_run_id()
        node.workerinput[WORKER_RUN_ID] = run_id
        self.worker_runs[node.gateway.id] = run_id

    @hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """A worker that crashed (``os._exit``, segfault, OOM kill) could not tear down: remove
        what its run id labels now, and say so."""
        run_id = self.worker_runs.get(getattr(getattr(node, "gateway", None), "id", ""))
        if not error or not run_id:
            return
        try:
            names = backends_in_use(self.session.settings.backend)
        except Exception:
            return
        from ..backends import registry

        for name in names:
            if not registry.availability(name):
                continue
            options = BackendOptions(run_id=run_id, workdir=run_directory(run_id))
            try:
                lines = registry.load(name).clean(run_id, options)
            except Exception as exc:
                lines = [f"clean failed: {type(exc).__name__}: {exc}"]
            for line in lines:
                self._say(f"worker {node.gateway.id} crashed; run {run_id} ({name}): {line}", crashed=True)
        with contextlib.suppress(OSError):  # the node logs stay; the run is no longer "in use"
            (run_directory(run_id) / RUN_INFO).unlink()

    def _wanted(self) -> bool:
        s = self.session.settings
        opt = self.config.option
        return not (
            self.done
            or hasattr(self.config, "workerinput")
            or s.plan is not None
            or s.matrix
            or getattr(opt, "collectonly", False)
        )

    @hookimpl
    def pytest_sessionstart(self, session: Any) -> None:
        """xdist controller: sweep before the workers start (it collects nothing itself)."""
        if getattr(self.config.option, "dist", "no") != "no" and getattr(self.config.option, "tx", None):
            self.run()

    @hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: Any) -> None:
        plan = self.session.plan
        if plan is not None and plan.groups:
            self.run()

    def run(self) -> None:
        if not self._wanted():
            return
        self.done = True
        try:
            names = backends_in_use(self.session.settings.backend)
        except Exception:
            return  # an unknown backend is reported by the session itself
        sweep(names, say=self._say)

    def _say(self, line: str, crashed: bool = False) -> None:
        tr = self.config.pluginmanager.getplugin("terminalreporter")
        text = f"bannou: {line}" if crashed else f"bannou: stale resources of a dead session removed: {line}"
        if tr is not None:
            tr.ensure_newline()
            tr.write_line(text)
        else:
            print(text)
