"""edge-tester console format -> per-test results, on transcripts covering every line kind."""

from __future__ import annotations

from pytest_bannou.testers import get_parser
from pytest_bannou.testers.edge_tester import not_run_name
from pytest_bannou.testers.model import EXIT_STATUS_CASE, INCOMPLETE_CASE, NO_RESULTS_CASE, SETUP_CASE
from tests.support.testers import read

P = get_parser("edge-tester")


def outcomes(run):
    return [(c.name, c.outcome) for c in run.cases]


def test_passing_run():
    run = P.parse(read("edge_pass.log"), 0)
    assert outcomes(run) == [
        ("Auth - Register And Login", "passed"),
        ("SplitRouting - Deploy Split Topology", "passed"),
        ("Capability Flow", "passed"),
    ]
    assert run.ok and run.warnings == []
    assert run.summary == {"registered": 3, "total": 3, "passed": 3, "failed": 0, "failed_tests": []}
    # the test's own lines are its output; the separator lines are not
    split = run.case("SplitRouting - Deploy Split Topology")
    assert "auth now served by bannou-auth" in split.output
    assert "━" not in split.output


def test_failing_run_with_exception_and_failed_list():
    run = P.parse(read("edge_fail.log"), 1)
    assert outcomes(run) == [
        ("Auth - Register And Login", "passed"),
        ("Capability Flow", "failed"),
        ("Game Session - Join", "failed"),
        ("Meta Endpoints", "passed"),
    ]
    cap = run.case("Capability Flow")
    assert "Expected 41 capabilities, got 38" in cap.output
    assert "Game Session" not in cap.output
    join = run.case("Game Session - Join")
    assert join.message == "exception: System.TimeoutException: no response within 10 s"
    assert run.summary["failed_tests"] == ["Capability Flow", "Game Session - Join"]
    assert run.warnings == []


def test_unclear_is_reported_distinctly_with_a_warning():
    run = P.parse(read("edge_unclear.log"), 0)
    assert outcomes(run) == [("Auth - Register And Login", "passed"), ("Meta Endpoints", "unclear")]
    assert run.ok  # upstream counts it as a pass ...
    assert run.unclear == 1 and run.passed == 1  # ... the plugin shows it apart
    assert any("Meta Endpoints" in w and "unclear" in w for w in run.warnings)
    assert "204 with an empty body" in run.case("Meta Endpoints").output


def test_truncated_run_fails_the_unfinished_test_and_reports_the_rest_not_run():
    run = P.parse(read("edge_truncated.log"), None)
    assert outcomes(run) == [
        ("Auth - Register And Login", "passed"),
        ("SplitRouting - Deploy Split Topology", "failed"),
        (not_run_name(1), "not_run"),
        (not_run_name(2), "not_run"),
        (not_run_name(3), "not_run"),
    ]
    unfinished = run.case("SplitRouting - Deploy Split Topology")
    assert "run ended before a verdict" in unfinished.message
    assert "Waiting for mapping version 4" in unfinished.output


def test_killed_run_between_tests_is_incomplete():
    text = read("edge_pass.log").split(
        "━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\n📋 Running: Capability Flow"
    )[0]
    run = P.parse(text, None)
    assert outcomes(run) == [
        ("Auth - Register And Login", "passed"),
        ("SplitRouting - Deploy Split Topology", "passed"),
        (INCOMPLETE_CASE, "error"),
        (not_run_name(1), "not_run"),
    ]


def test_noisy_log_timestamps_ansi_crlf_and_decoys():
    run = P.parse(read("edge_noisy.log"), 1)
    assert outcomes(run) == [
        ("Auth - Register And Login", "passed"),
        ("Capability Flow", "failed"),
        ("Meta Endpoints", "unclear"),
    ]
    assert [c.duration for c in run.cases] == [3.0, 2.0, 3.0]
    # the indented decoy verdict and the "PASSED" log line are the test's output, not verdicts
    assert "✅ Test Inner Step PASSED" in run.case("Auth - Register And Login").output
    # the decoy "TEST SUMMARY of meta endpoints" line did not end the run early
    assert run.summary["total"] == 3 and run.summary["failed_tests"] == ["Capability Flow"]
    # only the unclear warning: counts agree (unclear counts as passed in the summary)
    assert len(run.warnings) == 1


def test_summary_is_cross_checked():
    text = (
        "   Total tests registered: 3\n"
        "📋 Running: A\n✅ Test A PASSED\n"
        "📋 Running: B\n✅ Test B PASSED\n"
        "📊 TEST SUMMARY\n   Total:  4\n   Passed: 2\n   Failed: 2\n\n❌ Failed tests:\n   - B\n   - Z\n"
    )
    run = P.parse(text, 1)
    assert outcomes(run) == [("A", "passed"), ("B", "failed"), ("Z", "failed"), (not_run_name(1), "not_run")]
    assert any("'B' printed passed" in w for w in run.warnings)
    assert "listed under 'Failed tests'" in run.case("Z").message


def test_zero_exit_with_failures_keeps_the_failures():
    text = "📋 Running: A\n❌ Test A FAILED\n📊 TEST SUMMARY\n   Total:  1\n   Passed: 0\n   Failed: 1\n"
    run = P.parse(text, 0)
    assert outcomes(run) == [("A", "failed")] and any("exited with code 0" in w for w in run.warnings)


def test_exit_one_without_failures_is_an_error():
    text = "📋 Running: A\n✅ Test A PASSED\n📊 TEST SUMMARY\n   Total:  1\n   Passed: 1\n   Failed: 0\n"
    run = P.parse(text, 1)
    assert outcomes(run) == [("A", "passed"), (EXIT_STATUS_CASE, "error")]


def test_connectivity_failure_before_the_suite_is_a_setup_error():
    run = P.parse("❌ Basic WebSocket connectivity test FAILED\n", 1)
    assert outcomes(run) == [(SETUP_CASE, "error")]
    assert "connectivity test FAILED" in run.cases[0].output


def test_menu_and_garbage():
    menu = P.parse(read("edge_menu.log"), None)
    assert outcomes(menu) == [(NO_RESULTS_CASE, "error")]
    assert "daemon mode was not honoured" in menu.cases[0].message
    garbage = P.parse("✅ Test\n❌\n⚠️\n📋\n📊\nTotal: x\n", None)
    assert outcomes(garbage) == [(NO_RESULTS_CASE, "error")]


def test_warning_sign_without_variation_selector():
    text = "📋 Running: A\n⚠ Test A completed (result unclear)\n📊 TEST SUMMARY\n   Total:  1\n"
    run = P.parse(text, 0)
    assert outcomes(run) == [("A", "unclear")]
