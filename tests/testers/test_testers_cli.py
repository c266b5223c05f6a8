"""``bannou-env testers parse``: real CLI processes on saved logs."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_bannou.cli import main
from tests.support.testers import DATA


def cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_bannou.cli", "testers", "parse", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")
    )


@pytest.mark.parametrize(
    ("fmt", "log", "extra", "rc", "expected"),
    [
        (
            "http-tester",
            "http_fail.log",
            [],
            1,
            [
                "PASSED Auth.LoginFlow",
                "FAILED Auth.RefreshToken",
                "FAILED GameSession.JoinSession",
                "PASSED Website.Status",
                "2 passed, 2 failed",
            ],
        ),
        (
            "http-tester",
            "http_crash139.log",
            ["--exit-code", "139"],
            1,
            [
                "PASSED Auth.LoginFlow",
                "FAILED Behavior.CompileAbml",
                "NOT RUN (tests after 'Behavior.CompileAbml')",
                "1 passed, 1 failed, 1 not run",
            ],
        ),
        (
            "edge-tester",
            "edge_unclear.log",
            [],
            0,
            ["PASSED Auth - Register And Login", "UNCLEAR Meta Endpoints", "1 passed, 0 failed, 1 unclear"],
        ),
        (
            "edge-tester",
            "edge_truncated.log",
            [],
            1,
            [
                "PASSED Auth - Register And Login",
                "FAILED SplitRouting - Deploy Split Topology",
                "NOT RUN (not run #1)",
                "NOT RUN (not run #2)",
                "NOT RUN (not run #3)",
                "1 passed, 1 failed, 3 not run",
            ],
        ),
        ("http-tester", "http_pass.log", ["--exit-code", "0"], 0, None),
    ],
)
def test_parse_prints_one_line_per_case_and_exits_by_outcome(fmt, log, extra, rc, expected):
    res = cli("--format", fmt, str(DATA / log), *extra)
    assert res.returncode == rc, res.stderr
    lines = res.stdout.splitlines()
    if expected is not None:
        assert lines == expected
    else:
        assert lines[-1] == "4 passed, 0 failed"


def test_junit_input(tmp_path: Path):
    xml = tmp_path / "in.xml"
    xml.write_text(
        '<testsuite name="s"><testcase classname="m" name="ok"/>'
        '<testcase classname="m" name="skip"><skipped/></testcase></testsuite>'
    )
    res = cli("--format", "junit", str(xml))
    assert res.returncode == 0
    assert res.stdout.splitlines() == ["PASSED m.ok", "NOT RUN m.skip", "1 passed, 0 failed, 1 not run"]


def test_unclear_warning_goes_to_stderr():
    res = cli("--format", "edge-tester", str(DATA / "edge_unclear.log"))
    assert "warning:" in res.stderr and "Meta Endpoints" in res.stderr


def test_json_output():
    res = cli("--format", "edge-tester", str(DATA / "edge_fail.log"), "--json", "--exit-code", "1")
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    assert doc["tester"] == "edge-tester" and doc["exit_code"] == 1 and doc["ok"] is False
    assert [c["outcome"] for c in doc["cases"]] == ["passed", "failed", "failed", "passed"]
    assert doc["counts"]["failed"] == 2


def test_junit_output_file(tmp_path: Path):
    out = tmp_path / "reports" / "edge.xml"
    res = cli(
        "--format", "edge-tester", str(DATA / "edge_noisy.log"), "--junit", str(out), "--tester", "edge"
    )
    assert res.returncode == 1
    suite = ET.parse(out).getroot()
    assert suite.tag == "testsuite" and suite.get("name") == "edge"
    cases = {tc.get("name"): tc for tc in suite.iter("testcase")}
    assert set(cases) == {"Auth - Register And Login", "Capability Flow", "Meta Endpoints"}
    assert all(tc.get("classname") == "tester.edge" for tc in cases.values())
    failure = cases["Capability Flow"].find("failure")
    assert failure is not None and "Expected 41 capabilities" in failure.text
    assert cases["Auth - Register And Login"].get("time") == "3.000"
    assert "Expected 41" in cases["Capability Flow"].find("system-out").text


def test_stdin_with_non_utf8_bytes():
    log = (DATA / "http_fail.log").read_bytes().replace(b"401 Unauthorized", b"401 \xff\xfe Unauthorized")
    res = cli("--format", "http-tester", "-", stdin=log)
    assert res.returncode == 1
    assert res.stdout.splitlines()[-1] == "2 passed, 2 failed"


def test_empty_input_is_a_failure_with_a_reason(capsys):
    res = cli("--format", "http-tester", "-", "--json", stdin=b"")
    doc = json.loads(res.stdout)
    assert res.returncode == 1 and doc["cases"][0]["message"] == "the tester printed nothing"


def test_bad_arguments_give_one_clear_message(tmp_path: Path, capsys):
    assert main(["testers", "parse", "--format", "trx", str(DATA / "http_pass.log")]) == 1
    err = capsys.readouterr().err
    assert "unknown tester format 'trx'" in err and "edge-tester" in err and "Traceback" not in err
    missing = tmp_path / "nope.log"
    assert main(["testers", "parse", "--format", "http-tester", str(missing)]) == 1
    err = capsys.readouterr().err
    assert f"cannot read tester log {missing}" in err


def test_a_50_mb_log(tmp_path: Path):
    """A huge log (noise between tests, one very long line) gives the right results."""
    log = tmp_path / "big.log"
    noise = ("info: Worker[0] " + "x" * 200 + "\n") * 500
    with log.open("w", encoding="utf-8") as f:
        f.write(
            "Running in daemon mode - executing tests sequentially with fail-fast on service crashes...\n"
        )
        n = 0
        while f.tell() < 50 * 1024 * 1024:
            n += 1
            f.write(f"Running test: T{n}\n{noise}✅ Test T{n} completed successfully: ok\n")
        f.write("y" * (2 * 1024 * 1024) + "\n")  # one 2 MB line
        f.write("Running test: Last\n❌ Test Last failed: the end\n")
        f.write(f"All tests completed in daemon mode. Passed: {n}, Failed: 1\n")
    res = cli("--format", "http-tester", str(log))
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert lines[-1] == f"{n} passed, 1 failed"
    assert lines[-2] == "FAILED Last"
    assert res.stderr == ""
