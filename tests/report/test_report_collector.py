"""ReportCollector: the plugin's few calls produce a complete RunReport; xdist partials merge."""

from __future__ import annotations

import threading

import pytest

from pytest_bannou.errors import BannouError
from pytest_bannou.report import ReportCollector, TestRecord, merge_partials, read_partials, write_partial
from pytest_bannou.report.collector import LONGREPR_LIMIT, outcome_from_phases, summarize_longrepr
from pytest_bannou.report.model import tester_nodeid as make_tester_nodeid


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _session(clock: Clock, worker: str | None = None) -> ReportCollector:
    c = ReportCollector(clock=clock)
    c.start("run-7", "local", ci_job="unit", worker=worker)
    return c


def test_collector_builds_the_run():
    clock = Clock()
    c = _session(clock)
    clock.t = 1010.0
    c.preset_deployed(
        "monolith", "monolith", preset_hash="abc", nodes=["bannou", "redis"], deploy_s=6, ready_s=2
    )
    with c.phase("monolith", "tests"):
        clock.t = 1015.0
    c.record_phase("t.py::test_a[monolith]", "monolith", "setup", "passed", 0.01)
    c.record_phase("t.py::test_a[monolith]", "monolith", "call", "failed", 0.5, "E assert 1 == 2")
    c.record_phase("t.py::test_a[monolith]", "monolith", "teardown", "passed", 0.02)
    c.test_result(
        TestRecord(
            make_tester_nodeid("http-tester", "Login", "monolith"),
            "monolith",
            "passed",
            0.3,
            "",
            "tester",
            "http-tester",
        )
    )
    c.restarted("monolith", "bannou")
    c.preset_deployed("monolith", "monolith", deploy_s=1.0, t_start=1016.0, transition="start auth")
    clock.t = 1020.0
    c.preset_torn_down("monolith", teardown_s=1.5)
    report = c.finish()

    assert (report.run_id, report.backend, report.ci_job, report.started_at, report.finished_at) == (
        "run-7",
        "local",
        "unit",
        1000.0,
        1020.0,
    )
    env = report.presets[0]
    assert env.deploy_s == 6 and env.ready_s == 2 and env.teardown_s == 1.5
    assert env.nodes == ["bannou", "redis"]
    assert env.transitions == ["start auth"]
    assert env.restarts == {"bannou": 1}
    assert [tuple(e) for e in env.timeline] == [
        ("deploy", 1002.0, 1008.0),
        ("ready", 1008.0, 1010.0),
        ("tests", 1010.0, 1015.0),
        ("transition", 1016.0, 1017.0),
        ("teardown", 1018.5, 1020.0),
    ]
    test = report.tests[0]
    assert test.outcome == "failed"
    assert test.duration == pytest.approx(0.53)
    assert test.longrepr_summary == "E assert 1 == 2"
    assert report.tests[1].kind == "tester"


@pytest.mark.parametrize(
    ("phases", "outcome"),
    [
        ({"setup": ("passed", False), "call": ("passed", False), "teardown": ("passed", False)}, "passed"),
        ({"setup": ("failed", False), "teardown": ("passed", False)}, "error"),
        ({"setup": ("skipped", False), "teardown": ("passed", False)}, "skipped"),
        ({"setup": ("passed", False), "call": ("failed", False), "teardown": ("failed", False)}, "failed"),
        ({"setup": ("passed", False), "call": ("passed", False), "teardown": ("failed", False)}, "error"),
        ({"setup": ("passed", False), "call": ("skipped", True), "teardown": ("passed", False)}, "skipped"),
        ({"setup": ("passed", False), "call": ("passed", True), "teardown": ("passed", False)}, "passed"),
        ({"setup": ("passed", False)}, "not_run"),
    ],
)
def test_outcome_from_phases(phases, outcome):
    assert outcome_from_phases(phases) == outcome


def test_teardown_error_keeps_both_texts():
    c = _session(Clock())
    c.record_phase("t.py::test_b", None, "setup", "passed")
    c.record_phase("t.py::test_b", None, "call", "failed", longrepr="call broke")
    c.record_phase("t.py::test_b", None, "teardown", "failed", longrepr="teardown broke")
    (test,) = c.finish().tests
    assert test.outcome == "failed"
    assert test.longrepr_summary == "call broke\n--- teardown ---\nteardown broke"


def test_unfinished_test_is_reported_with_a_warning():
    c = _session(Clock())
    c.record_phase("t.py::test_hang", "monolith", "setup", "passed", 0.1)
    (test,) = c.finish().tests
    assert test.outcome == "not_run"
    assert "never finished" in test.warnings[0]


def test_bad_calls_fail_loudly():
    c = ReportCollector()
    with pytest.raises(RuntimeError, match="start"):
        c.test_result(TestRecord("x", None, "passed"))
    with pytest.raises(BannouError, match="run_id"):
        c.start("", "local")
    c.start("r", "local")
    with pytest.raises(ValueError, match="outcome 'ok'"):
        c.test_result(TestRecord("x", None, "ok"))
    with pytest.raises(ValueError, match="kind 'junit'"):
        c.test_result(TestRecord("x", None, "passed", kind="junit"))
    with pytest.raises(RuntimeError, match="never recorded"):
        c.preset_torn_down("ghost", 1.0)


def test_longrepr_is_bounded_keeping_head_and_tail():
    text = "HEAD\n" + "x" * 100_000 + "\nTAIL"
    short = summarize_longrepr(text)
    assert len(short) <= LONGREPR_LIMIT
    assert short.startswith("HEAD") and short.endswith("TAIL")
    assert "characters cut by pytest-bannou" in short
    assert summarize_longrepr("small") == "small"
    assert summarize_longrepr(None) == ""
    c = _session(Clock())
    c.test_result(TestRecord("t", None, "failed", longrepr_summary=text))
    assert len(c.finish().tests[0].longrepr_summary) <= LONGREPR_LIMIT


def test_threads_can_report_concurrently():
    c = _session(Clock())
    c.preset_deployed("monolith", "monolith", deploy_s=1.0)

    def feed(worker: int) -> None:
        for i in range(200):
            c.test_result(TestRecord(f"tester::h::case{worker}-{i}[monolith]", "monolith", "passed"))
            c.event("monolith", f"tester:h{worker}", float(i), float(i + 1))

    threads = [threading.Thread(target=feed, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    report = c.finish()
    assert len(report.tests) == 800
    assert len(report.presets[0].timeline) == 801


def test_xdist_workers_write_partials_and_the_controller_merges(tmp_path):
    clock = Clock()
    for worker, preset in (("gw0", "monolith"), ("gw1", "split-auth"), ("gw2", "monolith")):
        c = _session(clock, worker=worker)
        if worker != "gw2":  # gw2 reuses gw0's environment: it only ran tests
            c.preset_deployed(preset, preset, nodes=["bannou"], deploy_s=2.0)
        c.record_phase(f"t.py::test_{worker}[{preset}]", preset, "setup", "passed")
        c.record_phase(f"t.py::test_{worker}[{preset}]", preset, "call", "passed", 0.1)
        c.record_phase(f"t.py::test_{worker}[{preset}]", preset, "teardown", "passed")
        path = write_partial(c.finish(), tmp_path)
        assert path.name == f"partial-run-7-{worker}.json"
    stale = _session(clock, worker="gw0")
    stale._report.run_id = "older-run"
    write_partial(stale.finish(), tmp_path)
    controller = _session(clock)
    controller.test_result(TestRecord("t.py::test_gw0[monolith]", "monolith", "passed", 0.1))

    assert len(read_partials(tmp_path)) == 4
    assert len(read_partials(tmp_path, run_id="run-7")) == 3
    merged = merge_partials(tmp_path, controller.finish(), run_id="run-7", remove=True)
    assert [p.name for p in tmp_path.iterdir()] == ["partial-older-run-gw0.json"]  # other runs untouched
    assert merged.run_id == "run-7"
    assert [p.env_key for p in merged.presets] == ["monolith", "split-auth"]
    assert sorted(t.nodeid for t in merged.tests) == [
        "t.py::test_gw0[monolith]",
        "t.py::test_gw1[split-auth]",
        "t.py::test_gw2[monolith]",
    ]


def test_merge_partials_of_an_empty_directory_says_what_to_check(tmp_path):
    with pytest.raises(BannouError, match=r"no partial reports in .* xdist workers"):
        merge_partials(tmp_path)


def test_parsed_tester_runs_become_named_results():
    from pytest_bannou.testers.model import CaseResult, TesterRun

    run = TesterRun(
        tester="http-tester",
        format="http-tester",
        cases=[
            CaseResult("Test Login", "passed", 0.25),
            CaseResult(
                "Test Crash", "failed", None, "exit 139 (segmentation fault)", "last lines\nof output"
            ),
            CaseResult("Test After", "not_run", None, "not run: the tester crashed"),
            CaseResult("Test Meta", "unclear", 0.1),
        ],
        warnings=["daemon mode forced"],
    )
    c = _session(Clock())
    c.preset_deployed("monolith", "monolith", deploy_s=1.0)
    added = c.tester_run(run, "monolith")
    report = c.finish()
    assert report.tests == added
    assert [t.nodeid for t in report.tests] == [
        "tester::http-tester::Test Login[monolith]",
        "tester::http-tester::Test Crash[monolith]",
        "tester::http-tester::Test After[monolith]",
        "tester::http-tester::Test Meta[monolith]",
    ]
    assert [t.outcome for t in report.tests] == ["passed", "failed", "not_run", "unclear"]
    crash = report.tests[1]
    assert crash.longrepr_summary == "exit 139 (segmentation fault)\nlast lines\nof output"
    assert (crash.kind, crash.tester, crash.duration) == ("tester", "http-tester", None)
    assert report.tests[0].warnings == ["daemon mode forced"]
    assert (
        report.tests[3].warnings[-1] == "http-tester reported 'result unclear' (counted as a pass upstream)"
    )
