"""http-tester console format -> per-test results, on transcripts covering every line kind."""

from __future__ import annotations

from pytest_bannou.testers import get_parser
from pytest_bannou.testers.http_tester import not_started_name
from pytest_bannou.testers.model import EXIT_STATUS_CASE, INCOMPLETE_CASE, NO_RESULTS_CASE, SETUP_CASE
from tests.support.testers import read

P = get_parser("http-tester")


def outcomes(run):
    return [(c.name, c.outcome) for c in run.cases]


def test_passing_run():
    run = P.parse(read("http_pass.log"), 0)
    assert outcomes(run) == [
        ("Auth.LoginFlow", "passed"),
        ("Auth.RefreshToken", "passed"),
        ("Accounts.CreateAccount", "passed"),
        ("Permissions.RegisterServicePermissions", "passed"),
    ]
    assert run.ok and run.warnings == []
    assert run.summary == {"passed": 4, "failed": 0}
    assert run.case("Auth.LoginFlow").message == "login returned an access token"
    # the interleaved .NET log lines belong to the running test's output
    assert "End processing HTTP request after 42.1ms" in run.case("Auth.LoginFlow").output
    assert run.case("Auth.LoginFlow").duration is None  # no timestamps in this log


def test_failing_run_messages_and_output():
    run = P.parse(read("http_fail.log"), 1)
    assert outcomes(run) == [
        ("Auth.LoginFlow", "passed"),
        ("Auth.RefreshToken", "failed"),
        ("GameSession.JoinSession", "failed"),
        ("Website.Status", "passed"),
    ]
    assert not run.ok and run.failed == 2
    refresh = run.case("Auth.RefreshToken")
    assert refresh.message == "expected 200 from /auth/refresh, got 401 Unauthorized"
    assert "Refresh token rejected: signature mismatch" in refresh.output
    join = run.case("GameSession.JoinSession")
    assert join.message.startswith("exception: System.Net.Http.HttpRequestException")
    # the stack trace printed after the verdict stays with the test
    assert "GameSessionTests.JoinSession()" in join.output
    assert "Website" not in join.output
    assert run.warnings == []


def test_crash_139_stops_the_run_and_reports_the_rest_as_not_run():
    run = P.parse(read("http_crash139.log"), 139)
    assert outcomes(run) == [
        ("Auth.LoginFlow", "passed"),
        ("Behavior.CompileAbml", "failed"),
        (not_started_name("Behavior.CompileAbml"), "not_run"),
    ]
    crashed = run.case("Behavior.CompileAbml")
    assert "service crash" in crashed.message and "Connection refused" in crashed.message
    assert run.summary["crashed_in"] == "Behavior.CompileAbml"
    assert not run.ok


def test_exit_139_without_fatal_line_fails_the_running_test():
    text = "Running test: A\n✅ Test A completed successfully: ok\nRunning test: B\nsome log\n"
    run = P.parse(text, 139)
    assert outcomes(run) == [("A", "passed"), ("B", "failed"), (not_started_name("B"), "not_run")]
    assert "run ended before a verdict" in run.case("B").message
    assert "139" in run.case("B").message


def test_truncated_run_fails_the_started_test():
    run = P.parse(read("http_truncated.log"), None)
    assert outcomes(run) == [("Auth.LoginFlow", "passed"), ("Orchestrator.DeployPreset", "failed")]
    unfinished = run.case("Orchestrator.DeployPreset")
    assert unfinished.message == "run ended before a verdict"
    assert "waiting for heartbeats" in unfinished.output


def test_log_ending_between_tests_is_an_incomplete_run():
    text = "Running test: A\n✅ Test A completed successfully: ok\n"
    run = P.parse(text, None)
    assert outcomes(run) == [("A", "passed"), (INCOMPLETE_CASE, "error")]
    assert not run.ok
    # with exit 0 the same output is accepted, with a warning
    run0 = P.parse(text, 0)
    assert run0.ok and run0.warnings


def test_noisy_log_compose_prefix_timestamps_ansi_crlf_and_decoys():
    run = P.parse(read("http_noisy.log"), 1)
    assert outcomes(run) == [
        ("Auth.LoginFlow", "passed"),
        ("Accounts.Failing: With Colon", "failed"),
        ("Website.Status", "passed"),
    ]
    assert run.case("Accounts.Failing: With Colon").message == "expected 1 account, found 0"
    # durations from the docker timestamps: Running test -> verdict
    assert run.case("Auth.LoginFlow").duration == 3.0
    assert run.case("Accounts.Failing: With Colon").duration == 2.0
    assert run.case("Website.Status").duration == 1.0
    assert "\x1b" not in run.case("Auth.LoginFlow").output and "\r" not in run.raw_tail
    assert run.warnings == []


def test_summary_mismatch_is_a_warning():
    text = (
        "Running test: A\n✅ Test A completed successfully: ok\n"
        "All tests completed in daemon mode. Passed: 5, Failed: 0\n"
    )
    run = P.parse(text, 0)
    assert run.ok and any("Passed: 5" in w for w in run.warnings)


def test_verdict_without_running_line_and_no_verdict_before_next_test():
    text = (
        "Running test: A\nRunning test: B\n❌ Test B failed: boom\n❌ Test C failed with exception: x\n"
        "All tests completed in daemon mode. Passed: 0, Failed: 3\n"
    )
    run = P.parse(text, 1)
    assert outcomes(run) == [("A", "failed"), ("B", "failed"), ("C", "failed")]
    assert run.case("A").message == "no verdict printed before the next test started"
    assert run.case("C").message == "exception: x"


def test_setup_failure_before_any_test():
    run = P.parse("⏳ Waiting for bannou...\n❌ bannou did not answer /health within 60s\n", 1)
    assert outcomes(run) == [(SETUP_CASE, "error")]
    assert "exited with code 1 before any test ran" in run.cases[0].message
    assert "did not answer /health" in run.cases[0].output


def test_nonzero_exit_with_no_failure_is_an_error():
    text = (
        "Running test: A\n✅ Test A completed successfully: ok\n"
        "All tests completed in daemon mode. Passed: 1, Failed: 0\n"
    )
    run = P.parse(text, 2)
    assert outcomes(run) == [("A", "passed"), (EXIT_STATUS_CASE, "error")]


def test_interactive_menu_is_a_configuration_error():
    run = P.parse(read("http_menu.log"), None)
    assert outcomes(run) == [(NO_RESULTS_CASE, "error")]
    assert "daemon mode was not honoured" in run.cases[0].message


def test_empty_and_garbage_output_give_an_error_result():
    empty = P.parse("", 0)
    assert outcomes(empty) == [(NO_RESULTS_CASE, "error")]
    assert "printed nothing" in empty.cases[0].message
    garbage = P.parse("\x00\x01 binary \ufffd\ufffd junk\nPASSED PASSED ✅\n", None)
    assert outcomes(garbage) == [(NO_RESULTS_CASE, "error")]
    assert "no http-tester test results" in garbage.cases[0].message


def test_indented_marker_is_not_a_marker():
    text = (
        "Running test: A\n   ✅ Test A completed successfully: inside a message\n"
        "❌ Test A failed: real verdict\n"
        "All tests completed in daemon mode. Passed: 0, Failed: 1\n"
    )
    run = P.parse(text, 1)
    assert outcomes(run) == [("A", "failed")]


def test_a_case_keeps_a_bounded_output_with_a_note():
    """A test that prints a flood keeps only its last lines and characters, and says so."""
    flood = "".join(f"line {i} " + "x" * 500 + "\n" for i in range(1000))
    text = (
        f"Running test: A\n{flood}❌ Test A failed: boom\n"
        "Running test: B\n" + "y" * 200_000 + "\n✅ Test B completed successfully\n"
        "All tests completed in daemon mode. Passed: 1, Failed: 1\n"
    )
    run = P.parse(text, 1)
    assert outcomes(run) == [("A", "failed"), ("B", "passed")]
    a, b = run.case("A").output, run.case("B").output
    assert a.startswith("[... 601 earlier lines omitted ...]\n[... ")
    assert "earlier characters omitted" in a and a.endswith("❌ Test A failed: boom")
    assert "line 999 " in a and "line 0 " not in a
    assert len(a) < 65_000 and len(b) < 65_000
    assert "earlier characters omitted" in b and b.endswith("✅ Test B completed successfully")
