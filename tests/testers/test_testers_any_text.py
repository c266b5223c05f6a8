"""Tester output with any characters: well-formed JUnit XML, nothing raw reaching a terminal."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_bannou.testers.junit_writer import write_junit
from pytest_bannou.testers.model import CaseResult, TesterRun, escape_controls

NASTY = ["\udcff", "\ud83d", "\ufffe", "\uffff", "\x00", "\x07", "\x08", "\x0b", "\x1b", "\x1bc", "\r"]
ANY_TEXT = st.lists(st.one_of(st.characters(exclude_categories=()), st.sampled_from(NASTY)), max_size=25).map(
    "".join
)
OUTCOMES = st.sampled_from(["passed", "failed", "not_run", "unclear", "error"])
CASES = st.builds(CaseResult, ANY_TEXT, OUTCOMES, st.none() | st.floats(0, 10), ANY_TEXT, ANY_TEXT)


def cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_bannou.cli", "testers", "parse", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
    )


@settings(max_examples=150, deadline=None)
@given(
    tester=ANY_TEXT.filter(bool),
    fmt=ANY_TEXT,
    cases=st.lists(CASES, max_size=4),
    warnings=st.lists(ANY_TEXT, max_size=3),
)
def test_junit_writer_is_well_formed_for_any_text(tester, fmt, cases, warnings) -> None:
    run = TesterRun(tester, fmt, cases, exit_code=1, warnings=warnings)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.xml"
        write_junit(run, path)
        path.read_bytes().decode("utf-8")  # strict
        suite = ET.parse(path).getroot()
    assert len(list(suite.iter("testcase"))) == len(cases)


@given(cases=st.lists(CASES, max_size=3), warnings=st.lists(ANY_TEXT, max_size=2))
def test_escaped_run_has_no_terminal_controls(cases, warnings) -> None:
    run = escape_controls(TesterRun("t", "http-tester", cases, warnings=warnings, raw_tail="\x07\udcff"))
    texts = [run.raw_tail, *run.warnings] + [t for c in run.cases for t in (c.name, c.message, c.output)]
    for text in texts:
        text.encode("utf-8")
        assert not any(ch in text for ch in "\x00\x07\x08\x0b\x1b\r")
    assert [c.outcome for c in run.cases] == [c.outcome for c in cases]


HOSTILE_LOG = (
    "Running in daemon mode - executing tests sequentially with fail-fast on service crashes...\n"
    "Running test: Evil\x07Name\n"
    "\u274c Test Evil\x07Name failed: bell \x07 back \x08 reset \x1bc nonchars \ufffe\uffff nul \x00\n"
    "All tests completed in daemon mode. Passed: 0, Failed: 1\n"
)


def test_cli_junit_and_text_output_survive_hostile_characters(tmp_path: Path) -> None:
    out = tmp_path / "junit.xml"
    res = cli("--format", "http-tester", "-", "--junit", str(out), stdin=HOSTILE_LOG.encode("utf-8"))
    assert res.returncode == 1, res.stderr
    suite = ET.parse(out).getroot()  # U+FFFE, U+FFFF and NUL made XML that did not parse
    (case,) = suite.iter("testcase")
    assert case.get("name") == "Evil\\x07Name"
    assert "nonchars \\ufffe\\uffff nul \\x00" in case.find("failure").get("message")
    assert b"\x07" not in res.stdout and b"\x1b" not in res.stdout
    assert b"FAILED Evil\\x07Name" in res.stdout


def test_cli_json_output_escapes_controls() -> None:
    res = cli("--format", "http-tester", "-", "--json", stdin=HOSTILE_LOG.encode("utf-8"))
    doc = json.loads(res.stdout.decode("utf-8"))
    (case,) = doc["cases"]
    assert case["name"] == "Evil\\x07Name" and "\\x1bc" in case["message"]


def test_cli_junit_into_an_unwritable_path_is_one_clear_message(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text(HOSTILE_LOG, encoding="utf-8")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    # under a regular file, deeper under it, a directory, a parent that cannot be created (even by root)
    for target in (blocker / "x.xml", blocker / "deeper" / "x.xml", tmp_path, Path("/proc/self/nope/x.xml")):
        res = cli("--format", "http-tester", str(log), "--junit", str(target))
        err = res.stderr.decode("utf-8")
        assert res.returncode == 1, err
        assert "Traceback" not in err, err
        assert err.startswith(f"bannou-env: cannot write the JUnit file {target}:"), err
        assert len(err.strip().splitlines()) == 1, err
