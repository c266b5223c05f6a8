"""The pytest side of the stale-resource sweep (``bannou-sweep``): sweep before a session's
first deployment, pick each xdist worker's run id, clean up after a worker that crashed. The
sweep itself is ``pytest_bannou.environment.sweep``."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from ..backends.base import BackendOptions
from ..environment.runs import RUN_INFO, new_run_id, run_directory
from ..environment.sweep import backends_in_use, stop_run_testers, sweep

WORKER_RUN_ID = "bannou_run_id"  # workerinput key: the run id the controller gave a worker


class SweepPlugin:
    """Sweeps before the first deployment of a session (registered as ``bannou-sweep``)."""

    def __init__(self, config: Any, session: Any) -> None:
        self.config = config
        self.session = session
        self.done = False
        self.worker_runs: dict[str, str] = {}  # xdist worker id -> the run id it was given

    # --- xdist controller: worker run ids, crashed workers ---------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Pick each worker's run id here, so a worker that dies can still be cleaned up."""
        run_id = new_run_id()
        node.workerinput[WORKER_RUN_ID] = run_id
        self.worker_runs[node.gateway.id] = run_id

    @pytest.hookimpl(optionalhook=True)
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
        for line in stop_run_testers(run_id):
            self._say(f"worker {node.gateway.id} crashed; {line}", crashed=True)
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

    @pytest.hookimpl
    def pytest_sessionstart(self, session: Any) -> None:
        """xdist controller: sweep before the workers start (it collects nothing itself)."""
        if getattr(self.config.option, "dist", "no") != "no" and getattr(self.config.option, "tx", None):
            self.run()

    @pytest.hookimpl(tryfirst=True)
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
