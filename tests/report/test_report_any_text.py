"""Every report writer produces valid UTF-8, well-formed XML and valid JSON for any text.

Python strings hold what files cannot: lone surrogates (``"\\udcff"``, undecodable bytes read
with ``surrogateescape``), C0 controls, U+FFFE/U+FFFF. One of them in a failure message must not
cost the run its report.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_bannou._support.text import terminal_text, utf8_text, xml_text
from pytest_bannou.report import (
    PresetRecord,
    RunReport,
    TestRecord,
    TimelineEvent,
    read_json,
    read_partials,
    render_terminal,
    write_json,
    write_partial,
    write_report,
)

NASTY = ["\udcff", "\ud83d", "\ude00", "\ud83d\ude00", "\ufffe", "\uffff", "\x00", "\x07", "\x0b", "\x1b"]
NASTY += ["\x1b[31m", "\x1bc", "\r", "\x7f", "\x9b", "]]>", "<&>\"'", "\t\n"]

#: any code point, surrogates and controls included, with the troublemakers often
ANY_TEXT = st.lists(st.one_of(st.characters(exclude_categories=()), st.sampled_from(NASTY)), max_size=25).map(
    "".join
)
NAME = ANY_TEXT.filter(bool)


@st.composite
def reports(draw: st.DrawFn) -> RunReport:
    env = draw(NAME)
    preset = PresetRecord(
        env_key=env,
        preset=draw(NAME),
        preset_hash=draw(ANY_TEXT),
        backend=draw(ANY_TEXT),
        nodes=draw(st.lists(ANY_TEXT, max_size=3)),
        transitions=draw(st.lists(ANY_TEXT, max_size=2)),
        restarts=draw(st.dictionaries(ANY_TEXT, st.integers(0, 5), max_size=2)),
        timeline=[TimelineEvent(draw(NAME), 1.0, 2.0)],
    )
    outcomes = st.sampled_from(["failed", "error", "skipped", "not_run", "unclear", "passed"])
    tests = [
        TestRecord(
            nodeid=draw(NAME),
            preset=draw(st.sampled_from([env, None])),
            outcome=draw(outcomes),
            duration=0.5,
            longrepr_summary=draw(ANY_TEXT),
            kind=draw(st.sampled_from(["pytest", "tester"])),
            tester=draw(st.one_of(st.none(), NAME)),
            warnings=draw(st.lists(ANY_TEXT, max_size=2)),
        )
        for _ in range(draw(st.integers(1, 3)))
    ]
    return RunReport(
        run_id=draw(NAME),
        backend=draw(ANY_TEXT),
        started_at=0.0,
        finished_at=3.0,
        presets=[preset],
        tests=tests,
        ci_job=draw(st.one_of(st.none(), ANY_TEXT)),
        worker=draw(st.one_of(st.none(), NAME)),
        sources=draw(st.lists(ANY_TEXT, max_size=2)),
    )


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(report=reports())
def test_written_files_parse_back_for_any_text(report: RunReport) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_report(report, tmp)
        data = json.loads(paths["json"].read_bytes().decode("utf-8"))  # strict UTF-8
        assert len(data["tests"]) == len(report.tests)
        assert all(utf8_text(s) == s for s in _strings(data))
        assert read_json(paths["json"]).run_id == utf8_text(report.run_id)
        root = ET.parse(paths["junit"]).getroot()
        assert int(root.get("tests")) == len(report.tests)
        html = paths["html"].read_bytes().decode("utf-8")
        assert html.rstrip().endswith("</html>")
        assert not any(c in html for c in "\x00\x07\x0b\x1b\ufffe\uffff")
        partial = write_partial(report, tmp)
        json.loads(partial.read_bytes().decode("utf-8"))
        assert [r.run_id for r in read_partials(tmp)] == [utf8_text(report.run_id)]


@given(text=ANY_TEXT)
def test_helpers_give_storable_text(text: str) -> None:
    for safe in (utf8_text(text), xml_text(text), terminal_text(text)):
        safe.encode("utf-8")  # strict: no surrogate survives
    element = ET.Element("a", b=xml_text(text))
    element.text = xml_text(text)
    back = ET.fromstring(ET.tostring(element, encoding="utf-8"))  # the XML parser accepts it
    assert (back.text or "") == xml_text(text).replace("\r\n", "\n").replace("\r", "\n")
    shown = terminal_text(text)
    assert not any(c in shown for c in "\x00\x07\x08\x0b\x0c\x1b\x7f\x9b")
    assert all(c in shown for c in "\n\t" if c in text)


def test_helpers_keep_what_they_can() -> None:
    assert utf8_text("a\ud83d\ude00b") == "a\U0001f600b"  # a pair made of halves is joined
    assert utf8_text("bad \udcff byte") == "bad \ufffd byte"
    assert xml_text("\x1b[31mred\x1b[0m \x00 \ufffe \udcff") == "red \\x00 \\ufffe \ufffd"
    assert terminal_text("a\tb\nc\x07d\x1bce\r\nf\rg") == "a\tb\nc\\x07d\\x1bce\nf\\x0dg"
    assert terminal_text("\x1b[1;31mFAILED\x1b[0m") == "FAILED"
    assert terminal_text("plain text ✓") == "plain text ✓"


def test_terminal_table_is_printable() -> None:
    report = RunReport("r\udcff", "local", 0.0, tests=[TestRecord("t::x\x1b[2J\x07", None, "failed")])
    text = render_terminal(report)
    text.encode("utf-8")
    assert "\x1b" not in text and "\x07" not in text and "\\x07" in text


def test_failure_with_a_lone_surrogate_keeps_the_whole_report(pytester, monkeypatch) -> None:
    # pytest's own output writes the message too: as escapes, so that pytester can read it
    monkeypatch.setenv("PYTHONIOENCODING", "utf-8:backslashreplace")
    pytester.makepyfile(
        test_bytes=textwrap.dedent(
            r"""
            import pytest

            def test_fails():
                raise AssertionError("undecodable " + b"\xff\xfe".decode("utf-8", "surrogateescape"))

            def test_skips():
                pytest.skip("skipped \udcff \x00 \ufffe")

            def test_passes():
                pass
            """
        )
    )
    out = pytester.path / "report"
    result = pytester.runpytest_subprocess(f"--bannou-report={out}", "-p", "no:cacheprovider")
    assert result.ret == 1, result.stdout.str()  # one test failed, nothing else went wrong
    assert "bannou: report to" not in result.stdout.str()
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "report.html", "results.json"]
    data = json.loads((out / "results.json").read_bytes().decode("utf-8"))
    by_id = {t["nodeid"]: t for t in data["tests"]}
    assert by_id["test_bytes.py::test_fails"]["outcome"] == "failed"
    assert "undecodable \ufffd\ufffd" in by_id["test_bytes.py::test_fails"]["longrepr_summary"]
    assert by_id["test_bytes.py::test_skips"]["outcome"] == "skipped"
    assert by_id["test_bytes.py::test_passes"]["outcome"] == "passed"
    ET.parse(out / "junit.xml")
    assert "undecodable" in (out / "report.html").read_bytes().decode("utf-8")


def test_report_cli_prints_hostile_run_ids_safely(tmp_path: Path) -> None:
    src = tmp_path / "in" / "results.json"
    src.parent.mkdir()
    report = RunReport("run\x1b]0;title\x07\x1bc", "local", 0.0, tests=[TestRecord("t::a", None, "passed")])
    write_json(report, src)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_bannou.cli", "report", "render", str(src), "-o", str(tmp_path / "o")],
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert b"\x1b" not in proc.stdout and b"\x07" not in proc.stdout
    assert b"\\x1b" in proc.stdout
