"""ReportCollector: what the plugin calls while a session runs, so its glue stays a few lines.

    collector = ReportCollector()
    collector.start(run_id, backend="local", ci_job=os.environ.get("CI_JOB_NAME"), worker=None)
    collector.preset_deployed("monolith", "monolith", preset_hash=h, nodes=[...], deploy_s=3.2,
                              ready_s=1.1, t_start=t0)
    collector.record_phase(nodeid, "monolith", when, outcome, duration, longrepr, wasxfail)
    collector.tester_run(tester_run, "monolith")    # every case of a parsed tester run
    collector.test_result(TestRecord(...))         # any fully formed result
    collector.faults("monolith", [FaultRecord("pause", "auth", at=t1, test=nodeid)])
    collector.preset_torn_down("monolith", teardown_s=0.8)
    write_report(collector.finish(), directory)

Under xdist every worker writes its partial report with ``write_partial`` into a directory the
controller chose; the controller calls ``merge_partials`` (adding its own report, if any) and
writes the one set of files. Thread-safe: results may arrive from tester threads.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from ..errors import BannouError
from .json_io import read_json, write_json
from .merge import merge_reports
from .model import (
    KINDS,
    OUTCOMES,
    FaultRecord,
    PresetRecord,
    RunReport,
    TestRecord,
    TimelineEvent,
    tester_nodeid,
)

#: longest failure text kept per result; the head and the tail survive (where the error is)
LONGREPR_LIMIT = 8000


def summarize_longrepr(text: str | None, limit: int = LONGREPR_LIMIT) -> str:
    """``text`` bounded to ``limit`` characters, keeping its start and its end."""
    if not text:
        return ""
    if len(text) <= limit:
        return text
    head = limit * 3 // 8
    tail = limit - head - 60
    cut = len(text) - head - tail
    return f"{text[:head]}\n... [{cut} characters cut by pytest-bannou] ...\n{text[-tail:]}"


def outcome_from_phases(phases: dict[str, tuple[str, bool]]) -> str:
    """A test's one outcome from its pytest phases ``{when: (outcome, wasxfail)}``.

    Like pytest's junitxml: a failing setup or teardown is an error, a failing call a failure,
    xfail counts as skipped and xpass (strict or not) as passed unless the call failed.
    """
    setup = phases.get("setup")
    call = phases.get("call")
    teardown = phases.get("teardown")
    if setup and setup[0] == "failed":
        return "error"
    if setup and setup[0] == "skipped":
        return "skipped"
    if call and call[0] == "failed":
        return "failed"
    if teardown and teardown[0] == "failed":
        return "error"
    if call and call[0] == "skipped":
        return "skipped"
    if call and call[1]:  # xfail reported as skipped by pytest, xpass as passed with wasxfail
        return "skipped" if call[0] == "skipped" else "passed"
    if call:
        return "passed"
    return "not_run"


class _Case(Protocol):
    name: str
    outcome: str
    duration: float | None
    message: str
    output: str


class _TesterRun(Protocol):
    tester: str
    cases: list[_Case]
    warnings: list[str]


def tester_records(run: _TesterRun, env_key: str | None) -> list[TestRecord]:
    """A parsed tester run (``pytest_bannou.testers.model.TesterRun``) as report results.

    Each case becomes ``tester::<tester>::<case>[<env_key>]``; its message and own output form the
    failure text; run-level warnings go to every case, and "unclear" carries a visible warning.
    """
    records = []
    for case in run.cases:
        text = "\n".join(part for part in (case.message, case.output) if part)
        warnings = list(run.warnings)
        if case.outcome == "unclear":
            warnings.append(f"{run.tester} reported 'result unclear' (counted as a pass upstream)")
        records.append(
            TestRecord(
                nodeid=tester_nodeid(run.tester, case.name, env_key),
                preset=env_key,
                outcome=case.outcome,
                duration=case.duration,
                longrepr_summary=summarize_longrepr(text),
                kind="tester",
                tester=run.tester,
                warnings=warnings,
            )
        )
    return records


class ReportCollector:
    """Accumulates one process's RunReport while the session runs."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._report: RunReport | None = None
        self._presets: dict[str, PresetRecord] = {}
        self._tests: dict[tuple[str, str | None], TestRecord] = {}
        self._phases: dict[tuple[str, str | None], dict[str, tuple[str, bool]]] = {}
        self._pending: dict[tuple[str, str | None], TestRecord] = {}

    # -- session ---------------------------------------------------------------------------
    def start(self, run_id: str, backend: str, ci_job: str | None = None, worker: str | None = None) -> None:
        """Begin the report; must come before any other call."""
        if not run_id:
            raise BannouError("report: run_id must not be empty (the plugin passes its session run id)")
        with self._lock:
            self._report = RunReport(
                run_id=run_id, backend=backend, started_at=self._clock(), ci_job=ci_job, worker=worker
            )

    @property
    def started(self) -> bool:
        return self._report is not None

    def _need(self) -> RunReport:
        if self._report is None:
            raise RuntimeError("ReportCollector.start() was not called")
        return self._report

    # -- environments ----------------------------------------------------------------------
    def preset_deployed(
        self,
        env_key: str,
        preset: str,
        *,
        preset_hash: str = "",
        backend: str | None = None,
        nodes: Iterable[str] = (),
        deploy_s: float | None = None,
        ready_s: float | None = None,
        t_start: float | None = None,
        transition: str | None = None,
    ) -> PresetRecord:
        """Record a deployed environment (or one reached by a transition: pass its summary).

        ``t_start`` is when the deploy began (defaults to now minus the durations); deploy and
        ready phases are added to the timeline from the durations.
        """
        with self._lock:
            report = self._need()
            record = self._presets.get(env_key)
            if record is None:
                record = PresetRecord(env_key=env_key, preset=preset, backend=backend or report.backend)
                self._presets[env_key] = record
            record.preset_hash = preset_hash or record.preset_hash
            record.nodes = list(dict.fromkeys([*record.nodes, *nodes]))
            # a transition into an existing environment keeps its first deploy figures
            if deploy_s is not None and not (transition and record.deploy_s is not None):
                record.deploy_s = deploy_s
            if ready_s is not None and not (transition and record.ready_s is not None):
                record.ready_s = ready_s
            if transition:
                record.transitions.append(transition)
            start = t_start if t_start is not None else self._clock() - (deploy_s or 0) - (ready_s or 0)
            first = "transition" if transition else "deploy"
            if deploy_s is not None:
                record.timeline.append(TimelineEvent(first, start, start + deploy_s))
                start += deploy_s
            if ready_s is not None:
                record.timeline.append(TimelineEvent("ready", start, start + ready_s))
            return record

    def preset_failed(
        self,
        env_key: str,
        preset: str,
        error: str,
        *,
        preset_hash: str = "",
        backend: str | None = None,
        nodes: Iterable[str] = (),
        t_start: float | None = None,
        t_end: float | None = None,
    ) -> PresetRecord:
        """Record an environment that failed to deploy: listed with its error, its attempt a
        ``deploy failed`` phase of the timeline."""
        with self._lock:
            report = self._need()
            record = self._presets.get(env_key)
            if record is None:
                record = PresetRecord(env_key=env_key, preset=preset, backend=backend or report.backend)
                self._presets[env_key] = record
            record.preset_hash = preset_hash or record.preset_hash
            record.nodes = list(dict.fromkeys([*record.nodes, *nodes]))
            record.error = error
            end = t_end if t_end is not None else self._clock()
            record.timeline.append(
                TimelineEvent("deploy failed", t_start if t_start is not None else end, end)
            )
            return record

    def event(self, env_key: str, event: str, t_start: float, t_end: float) -> None:
        """Add one phase (``tests``, ``tester:http-tester`` ...) to an environment's timeline."""
        with self._lock:
            self._preset(env_key).timeline.append(TimelineEvent(event, t_start, max(t_start, t_end)))

    @contextmanager
    def phase(self, env_key: str, event: str) -> Iterator[None]:
        """Time a block as a timeline phase of ``env_key`` (recorded even if the block raises)."""
        start = self._clock()
        try:
            yield
        finally:
            self.event(env_key, event, start, self._clock())

    def restarted(self, env_key: str, node: str) -> None:
        with self._lock:
            restarts = self._preset(env_key).restarts
            restarts[node] = restarts.get(node, 0) + 1

    def faults(self, env_key: str, faults: Iterable[FaultRecord]) -> None:
        """Add faults made on (or undone in) ``env_key``: its timeline's markers, in time order."""
        with self._lock:
            record = self._preset(env_key)
            record.faults = sorted([*record.faults, *faults], key=lambda f: f.at)

    def preset_torn_down(self, env_key: str, teardown_s: float, t_end: float | None = None) -> None:
        with self._lock:
            record = self._preset(env_key)
            record.teardown_s = teardown_s
            end = t_end if t_end is not None else self._clock()
            record.timeline.append(TimelineEvent("teardown", end - teardown_s, end))

    def _preset(self, env_key: str) -> PresetRecord:
        self._need()
        try:
            return self._presets[env_key]
        except KeyError:
            raise RuntimeError(
                f"report: environment {env_key!r} was never recorded by preset_deployed()"
            ) from None

    # -- results ---------------------------------------------------------------------------
    def test_result(self, record: TestRecord) -> None:
        """Record one final result (a tester case, or a pytest test already combined)."""
        if record.outcome not in OUTCOMES:
            raise ValueError(f"report: outcome {record.outcome!r} is not one of {', '.join(OUTCOMES)}")
        if record.kind not in KINDS:
            raise ValueError(f"report: kind {record.kind!r} is not one of {', '.join(KINDS)}")
        record.longrepr_summary = summarize_longrepr(record.longrepr_summary)
        with self._lock:
            self._need()
            self._tests[(record.nodeid, record.preset)] = record

    def tester_run(self, run: _TesterRun, env_key: str | None) -> list[TestRecord]:
        """Record every case of a parsed tester run; returns the records added."""
        records = tester_records(run, env_key)
        for record in records:
            self.test_result(record)
        return records

    def record_phase(
        self,
        nodeid: str,
        preset: str | None,
        when: str,
        outcome: str,
        duration: float | None = None,
        longrepr: str | None = None,
        wasxfail: bool = False,
        warnings: Iterable[str] = (),
        faults: Iterable[FaultRecord] = (),
    ) -> None:
        """Feed one pytest phase report (setup/call/teardown); the result is final after teardown.

        ``faults`` are those the test made during this phase (listed under the result).

        A test whose teardown never arrives (a crash) is still reported by ``finish()``.
        """
        key = (nodeid, preset)
        with self._lock:
            self._need()
            phases = self._phases.setdefault(key, {})
            phases[when] = (outcome, wasxfail)
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = TestRecord(nodeid=nodeid, preset=preset, outcome="not_run")
            if duration is not None:
                pending.duration = (pending.duration or 0.0) + duration
            if longrepr and outcome in ("failed", "skipped") and not pending.longrepr_summary:
                pending.longrepr_summary = summarize_longrepr(longrepr)
            elif longrepr and outcome == "failed":
                pending.longrepr_summary = summarize_longrepr(
                    f"{pending.longrepr_summary}\n--- {when} ---\n{longrepr}"
                )
            pending.warnings.extend(w for w in warnings if w not in pending.warnings)
            pending.faults.extend(faults)
            pending.outcome = outcome_from_phases(phases)
            if when == "teardown":
                self._tests[key] = self._pending.pop(key)
                self._phases.pop(key, None)

    # -- end -------------------------------------------------------------------------------
    def finish(self) -> RunReport:
        """The finished report (pending pytest results included as they stand)."""
        with self._lock:
            report = self._need()
            for key, pending in self._pending.items():
                if "call" not in self._phases.get(key, {}) and pending.outcome == "not_run":
                    pending.warnings.append("the test never finished (session interrupted or worker crashed)")
                self._tests[key] = pending
            self._pending.clear()
            self._phases.clear()
            report.finished_at = self._clock()
            report.presets = list(self._presets.values())
            report.tests = list(self._tests.values())
            return report


# -- xdist: workers' partial reports ---------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def partial_name(report: RunReport) -> str:
    worker = report.worker or f"pid{os.getpid()}"
    return _UNSAFE.sub("_", f"partial-{report.run_id}-{worker}") + ".json"


def write_partial(report: RunReport, directory: str | os.PathLike[str]) -> Path:
    """A worker's report, written atomically into the directory the controller merges."""
    return write_json(report, Path(directory) / partial_name(report))


def read_partials(directory: str | os.PathLike[str], run_id: str | None = None) -> list[RunReport]:
    """Every partial report in ``directory`` (only ``run_id``'s, when given)."""
    reports = [read_json(path) for path in sorted(Path(directory).glob("partial-*.json"))]
    return [r for r in reports if run_id is None or r.run_id == run_id]


def merge_partials(
    directory: str | os.PathLike[str], *also: RunReport, run_id: str | None = None, remove: bool = False
) -> RunReport:
    """The controller's view: the workers' partials of ``run_id`` plus ``also`` (its own report).

    With ``remove`` the partial files that were merged are deleted afterwards, so that the report
    directory ends up holding only the three report files.
    """
    paths = sorted(Path(directory).glob("partial-*.json"))
    partials = [(path, read_json(path)) for path in paths]
    partials = [(path, r) for path, r in partials if run_id is None or r.run_id == run_id]
    reports = [r for _, r in partials] + list(also)
    if not reports:
        raise BannouError(
            f"report: no partial reports in {directory} and none given; did the xdist workers run"
            " with --bannou-report?"
        )
    merged = merge_reports(reports)
    if remove:
        for path, _ in partials:
            path.unlink(missing_ok=True)
    return merged
