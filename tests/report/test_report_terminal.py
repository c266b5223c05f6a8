"""The terminal table: where it failed, at a glance, bounded in length."""

from __future__ import annotations

from pytest_bannou.report import RunReport, render_terminal


def test_only_rows_that_did_not_pass_are_listed(sample_report):
    text = render_terminal(sample_report)
    lines = text.splitlines()
    assert lines[0] == (
        "bannou results (run run-a1, backend local, 2 environments): "
        "1 failed, 1 error, 2 unclear, 1 not run, 6 passed, 2 skipped"
    )
    assert lines[1].split() == ["test", "monolith", "split-auth", "(no", "preset)"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert rows["tests/test_auth.py::test_login"] == ["passed", "FAILED", "-"]
    assert rows["tests/test_plain.py::test_no_env"] == ["-", "-", "ERROR"]
    assert "tests/test_auth.py::test_health" not in rows
    assert len(lines) == 2 + 4  # login, Meta Endpoints (unclear), Crash Next (not run), no_env


def test_all_rows_and_row_cap(big_report_factory):
    report = big_report_factory(tests=300, presets=3, fail_every=4, text=10)
    text = render_terminal(report, max_rows=10)
    lines = text.splitlines()
    assert len(lines) == 2 + 10 + 1
    assert lines[-1].startswith("... ") and lines[-1].endswith(" more rows in report.html")
    everything = render_terminal(report, all_rows=True, max_rows=1000)
    assert len(everything.splitlines()) == 2 + 300


def test_green_run_is_one_line():
    assert render_terminal(RunReport("r", "local", 0.0)) == (
        "bannou results (run r, backend local, 0 environments): no results"
    )
