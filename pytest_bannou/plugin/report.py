"""pytest glue for ``--bannou-report DIR``: feed a ``ReportCollector`` from pytest's hooks and
write results.json, junit.xml and report.html at the end.

- every phase report of every test (``pytest_runtest_logreport``); tester cases (synthetic
  reports carrying ``tester_items.CASE_ATTR``) become ``kind="tester"`` results;
- environments from the plugin's own hooks: ``pytest_bannou_environment_ready`` (deploy and ready
  durations from the ``EnvRecord``), ``pytest_bannou_before_teardown`` (teardown timing); the
  ``tests`` and ``tester:NAME`` phases of each environment's timeline from the reports' times;
- faults (``EnvRecord.faults``, appended by the manager as they are made): those new during a
  test's phases are the test's own (listed under its result); at the end every environment's
  faults, each naming the test that made it, become its timeline's markers;
- under pytest-xdist each worker writes a partial report into DIR (under the controller's run
  id, passed in ``workerinput``); the controller merges them, removes them and writes the one
  set of files. Without xdist the session writes the files itself.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .._support.ci import ci_job_name
from .._support.masking import mask_text
from ..report import FaultRecord, ReportCollector, TestRecord, merge_partials, write_partial, write_report
from .testers import CASE_ATTR, RUN_ATTR

if TYPE_CHECKING:  # the session registers this plugin: it is passed in, never imported back
    from .session import BannouSession

RUN_ID_KEY = "bannou_report_run_id"
DIR_KEY = "bannou_report_dir"


def register(config: pytest.Config, bs: BannouSession) -> None:
    """Register the report plugin when ``--bannou-report`` (or its ini/env twin) is set."""
    if bs.settings.report is not None and bs.settings.plan is None:
        config.pluginmanager.register(ReportPlugin(config, bs, bs.settings.report), "bannou-report")


def _ci_job() -> str | None:
    return ci_job_name(os.environ)


def _longrepr_text(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, line, reason)
        return str(longrepr[2])
    try:
        return report.longreprtext
    except Exception:  # a report from an odd plugin: keep what can be said
        return str(longrepr)


def _fault(data: dict[str, Any], env_key: str, test: str | None) -> FaultRecord:
    """An ``EnvRecord.faults`` entry (``FaultEvent.to_json()``) as the report lists it."""
    replica = data.get("replica")
    return FaultRecord(
        action=str(data["action"]),
        node=str(data["node"]),
        at=float(data["at"]),
        replica=int(replica) if replica is not None else None,
        undo=bool(data.get("undo")),
        env_key=env_key,
        test=test,
    )


class ReportPlugin:
    """Collects one process's results; writes (or, on an xdist worker, hands over) the report."""

    def __init__(self, config: pytest.Config, bs: BannouSession, directory: Path) -> None:
        self.config = config
        self.bs = bs
        workerinput = getattr(config, "workerinput", None)
        # workers write where the controller said (its absolute path: a worker's cwd may differ)
        self.directory = Path((workerinput or {}).get(DIR_KEY) or Path(directory).resolve())
        self.worker: str | None = workerinput.get("workerid") if workerinput else None
        self.run_id = (workerinput or {}).get(RUN_ID_KEY) or bs.manager.run_id
        self.collector = ReportCollector()
        self.collector.start(self.run_id, backend=bs.settings.backend, ci_job=_ci_job(), worker=self.worker)
        self.deployed: set[str] = set()
        self.transitions: dict[str, int] = {}
        self.teardown_started: dict[str, float] = {}
        self.tests_span: dict[str, list[float]] = {}
        self.tester_spans: list[tuple[str, str, float, float]] = []
        self.fault_seen: dict[str, int] = {}  # env key -> faults of its record already attributed
        self.fault_tests: dict[tuple[str, int], str] = {}  # (env key, index in its faults) -> nodeid
        self.written: dict[str, Path] = {}
        self.error: str | None = None

    @property
    def controller(self) -> bool:
        return self.worker is None and self.config.pluginmanager.hasplugin("dsession")

    # --- xdist --------------------------------------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[RUN_ID_KEY] = self.run_id
        node.workerinput[DIR_KEY] = str(self.directory)

    # --- environments -------------------------------------------------------------------------
    def pytest_bannou_environment_ready(self, environment: Any) -> None:
        env = environment
        now = time.time()
        rec = self.bs.manager.records.get(env.key)
        deploy_s = rec.deploy_time if rec else None
        total = rec.ready_time if rec else None
        ready_s = max(0.0, total - (deploy_s or 0.0)) if total is not None else None
        start = now - (total or 0.0)
        self._end_teardowns(start)
        transitions = rec.transitions if rec else 0
        transition = None
        if transitions > self.transitions.get(env.key, 0):
            transition = f"transition #{transitions} to {env.key}"
        self.transitions[env.key] = transitions
        self.collector.preset_deployed(
            env.key,
            env.preset,
            preset_hash=env.topology.preset_hash,
            backend=env.backend,
            nodes=list(env.nodes),
            deploy_s=deploy_s,
            ready_s=ready_s,
            t_start=start,
            transition=transition,
        )
        self.deployed.add(env.key)

    def pytest_bannou_environment_failed(self, environment: Any, error: str, seconds: float) -> None:
        env, now = environment, time.time()
        self._end_teardowns(now - seconds)
        self.collector.preset_failed(
            env.key,
            env.preset,
            self._masked(error),
            preset_hash=env.topology.preset_hash,
            backend=env.backend,
            nodes=list(env.nodes),
            t_start=now - seconds,
            t_end=now,
        )
        self.deployed.add(env.key)  # its teardown and tests (failed at setup) are on the timeline

    def pytest_bannou_before_teardown(self, environment: Any) -> None:
        if environment.key in self.deployed:
            self.teardown_started[environment.key] = time.time()

    def _end_teardowns(self, end: float) -> None:
        for key, started in self.teardown_started.items():
            self.collector.preset_torn_down(key, max(0.0, end - started), t_end=end)
        self.teardown_started.clear()

    # --- faults -------------------------------------------------------------------------------
    def pytest_runtest_logstart(self, nodeid: str) -> None:
        """Faults made before the test starts (between tests, in the plugin's undoing) are not its own."""
        self.fault_seen = {key: len(rec.faults) for key, rec in self.bs.manager.records.items()}

    def _new_faults(self, nodeid: str) -> list[FaultRecord]:
        """The faults ``nodeid`` made since the last look (the plugin's undoing excluded)."""
        made = []
        for key, rec in self.bs.manager.records.items():
            start = self.fault_seen.get(key, 0)
            for i, data in enumerate(rec.faults[start:], start):
                if not data.get("undo"):
                    self.fault_tests[(key, i)] = nodeid
                    made.append(_fault(data, key, nodeid))
            self.fault_seen[key] = len(rec.faults)
        return sorted(made, key=lambda f: f.at)

    def _env_faults(self, key: str) -> list[FaultRecord]:
        rec = self.bs.manager.records.get(key)
        faults = rec.faults if rec else []
        return [_fault(data, key, self.fault_tests.get((key, i))) for i, data in enumerate(faults)]

    # --- results ------------------------------------------------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.controller:
            return  # the workers report their own results
        case = getattr(report, CASE_ATTR, None)
        key = self.bs.item_keys.get(report.nodeid)
        if key is not None and report.start and report.stop:
            span = self.tests_span.setdefault(key, [report.start, report.stop])
            span[0], span[1] = min(span[0], report.start), max(span[1], report.stop)
        if isinstance(case, dict):
            if report.when == "teardown":
                self.collector.test_result(
                    TestRecord(
                        nodeid=report.nodeid,
                        preset=case.get("env_key"),
                        outcome=case.get("outcome", "error"),
                        duration=case.get("duration"),
                        longrepr_summary=self._masked(case.get("text", "")),
                        kind="tester",
                        tester=case.get("tester"),
                        warnings=[self._masked(w) for w in case.get("warnings", [])],
                    )
                )
            return
        run = getattr(report, RUN_ATTR, None)
        if isinstance(run, dict) and report.when == "call" and run.get("t_start") and run.get("t_end"):
            self.tester_spans.append(
                (run["env_key"], f"tester:{run['tester']}", run["t_start"], run["t_end"])
            )
        self.collector.record_phase(
            report.nodeid,
            key,
            report.when,
            report.outcome,
            report.duration,
            self._masked(_longrepr_text(report)) if report.outcome != "passed" else None,
            wasxfail=hasattr(report, "wasxfail"),
            faults=self._new_faults(report.nodeid),
        )

    def _masked(self, text: str) -> str:
        """Secret environment values of the session's presets never reach a report file."""
        return mask_text(text, self.bs.secrets())

    # --- end ----------------------------------------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """After the plugin's teardown (a normal-priority impl): the report is complete."""
        self._end_teardowns(time.time())
        tester_keys = set()
        for key, event, t0, t1 in self.tester_spans:
            if key in self.deployed:
                self.collector.event(key, event, t0, t1)
                tester_keys.add(key)
        for key, (t0, t1) in self.tests_span.items():
            if key in self.deployed:
                self.collector.event(key, "tests", t0, t1)
        for key in sorted(self.deployed):
            self.collector.faults(key, self._env_faults(key))
        report = self.collector.finish()
        report.backend = self.bs.manager.backend_name
        try:
            if self.worker is not None:
                self.directory.mkdir(parents=True, exist_ok=True)
                write_partial(report, self.directory)
                return
            if self.controller:
                self.directory.mkdir(parents=True, exist_ok=True)
                report = merge_partials(self.directory, report, run_id=self.run_id, remove=True)
            self.written = write_report(report, self.directory)
        except Exception as exc:  # a report that cannot be written must not hide the test results
            self.error = f"{type(exc).__name__}: {exc}"
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        tr = terminalreporter
        if self.error is not None:
            tr.write_line(f"bannou: report to {self.directory} failed: {self.error}", red=True)
        elif self.written:
            files = ", ".join(p.name for p in self.written.values())
            tr.write_line(f"bannou report: {self.directory} ({files})")
