"""Line cleaning, menu detection, JUnit and exit-code parsers, the JUnit writer, the registry,
and a property: interleaved log noise never changes what the console parsers report."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_bannou import testers
from pytest_bannou.errors import BannouError
from pytest_bannou.testers import get_parser, known_formats
from pytest_bannou.testers.interactive import looks_interactive
from pytest_bannou.testers.junit_writer import to_junit
from pytest_bannou.testers.lines import clean, iter_lines, split_lines
from pytest_bannou.testers.model import CaseResult, TesterRun
from tests.support.testers import read


def test_clean_strips_transport_noise_and_reads_timestamps():
    line = clean(
        "\x1b[36mtester-1  |\x1b[0m 2026-03-01T12:00:05.123456789Z \x1b[31m❌ Test A FAILED\x1b[0m\r"
    )
    assert line.text == "❌ Test A FAILED"
    assert line.ts is not None and line.ts % 60 == pytest.approx(5.123456)
    plain = clean("Running test: A | B")
    assert plain == ("Running test: A | B", None)
    assert clean("2026-13-45T99:00:00Z not a date").ts is None


_stamp = st.one_of(
    st.just(""),
    st.builds(
        lambda d, sep, t, frac, zone, ws: f"{d}{sep}{t}{frac}{zone}{ws}",
        st.sampled_from(["2026-11-27", "2026-13-45", "1999-12-31", "2038-01-19"]),
        st.sampled_from("T "),
        st.sampled_from(["03:00:00", "23:59:59", "24:00:00", "00:00:60"]),
        st.one_of(st.just(""), st.from_regex(r"[.,][0-9]{1,12}", fullmatch=True), st.just(".\u0663")),
        st.sampled_from(["", "Z", "+02:00", "-0530", "+99:00"]),
        st.sampled_from([" ", "\t", ""]),
    ),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(_stamp, st.sampled_from(["✅ Test A PASSED", "x", "", "📋 Running: A"])), min_size=1)
)
def test_split_lines_agrees_with_clean(parts):
    """The bulk line splitter (cached second conversion, lazy timestamps) gives what the
    per-line ``clean`` gives; with ``stamp_starts`` only the chosen lines and the last stamped
    line carry their time."""
    _assert_split_like_clean("\n".join(stamp + body for stamp, body in parts))


_body = st.sampled_from(["✅ Test A PASSED", "x", "", "📋 Running: A", "━━━━━━━━", "  📋 indented"])


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(
        [
            "2026-11-27T03:00:{:02d}.{:09d}Z ",
            "2026-11-27 03:00:{:02d},{:03d} ",
            "1999-12-31T23:59:{:02d}.{:06d}+02:00 ",
        ]
    ),
    st.lists(st.tuples(st.integers(0, 59), st.integers(0, 999), _body), min_size=1, max_size=30),
    st.sampled_from(["", "\n", "\r\n"]),
    st.one_of(
        st.none(),
        st.tuples(st.integers(0, 29), st.sampled_from(["", "2026-13-45T03:00:00.000000000Z ", "x "])),
    ),
)
def test_split_lines_uniform_stamps_fast_path(shape, rows, ending, odd):
    """Logs whose every line has a stamp of one shape take the fixed-width path; one line of
    another shape (or none, or an impossible date) sends them down the general path: both
    agree with ``clean``."""
    lines = [shape.format(sec, frac) + body for sec, frac, body in rows]
    if odd is not None and odd[0] < len(lines):
        lines[odd[0]] = odd[1] + rows[odd[0]][2]
    _assert_split_like_clean("\n".join(lines).replace("\n", "\r\n" if ending == "\r\n" else "\n") + ending)


def _assert_split_like_clean(text: str) -> None:
    expected = list(iter_lines(text))
    lines, stamps = split_lines(text)
    assert lines == [ln.text for ln in expected]
    assert (stamps or [None] * len(lines)) == [ln.ts for ln in expected]
    lines, stamps = split_lines(text, frozenset("📋"))
    assert lines == [ln.text for ln in expected]
    stamped = [i for i, ln in enumerate(expected) if ln.ts is not None]
    wanted = [
        ln.ts if ln.text.startswith("📋") or (stamped and i == stamped[-1]) else None
        for i, ln in enumerate(expected)
    ]
    assert (stamps or [None] * len(lines)) == wanted


def test_registry_knows_the_four_formats_and_names_them_on_error():
    assert known_formats() == ["edge-tester", "exit-code", "http-tester", "junit"]
    for name in known_formats():
        parser = get_parser(name)
        assert isinstance(parser, testers.TesterParser) and parser.format == name
    with pytest.raises(BannouError) as exc:
        get_parser("trx")
    assert "'trx'" in str(exc.value) and "http-tester" in str(exc.value) and "junit" in str(exc.value)


def test_menu_detection():
    assert looks_interactive(read("http_menu.log"))
    assert looks_interactive(read("edge_menu.log"))
    assert not looks_interactive(read("http_fail.log"))
    assert not looks_interactive(read("edge_pass.log"))


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites>
  <testsuite name="pytest" tests="4" failures="1" errors="1" skipped="1" time="1.5">
    <testcase classname="tests.test_api" name="test_ok" time="0.25"><system-out>hello</system-out></testcase>
    <testcase classname="tests.test_api" name="test_bad" time="0.5">
      <failure message="assert 1 == 2">Traceback: assert 1 == 2</failure>
    </testcase>
    <testcase classname="tests.test_api" name="test_err" time="0.1">
      <error message="fixture broke"/>
    </testcase>
    <testcase classname="tests.test_api" name="test_skip"><skipped message="no redis"/></testcase>
  </testsuite>
</testsuites>"""


def test_junit_parser():
    run = get_parser("junit").parse(JUNIT, 1, tester="api")
    assert [(c.name, c.outcome, c.duration) for c in run.cases] == [
        ("tests.test_api.test_ok", "passed", 0.25),
        ("tests.test_api.test_bad", "failed", 0.5),
        ("tests.test_api.test_err", "error", 0.1),
        ("tests.test_api.test_skip", "not_run", None),
    ]
    bad = run.case("tests.test_api.test_bad")
    assert bad.message == "assert 1 == 2" and "Traceback" in bad.output
    assert run.case("tests.test_api.test_ok").output == "hello"
    assert run.summary == {"tests": 4, "failures": 1, "errors": 1, "skipped": 1}
    assert run.tester == "api" and run.failed == 2


def test_junit_parser_refuses_dtd_and_entities_and_survives_garbage():
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
        "<testsuite><testcase name='x'>&lol2;</testcase></testsuite>"
    )
    for text, why in (
        (bomb, "DTD"),
        ("<testsuite><testcase name='x'>", "malformed"),
        ("<html><body>502</body></html>", "root element is <html>"),
    ):
        run = get_parser("junit").parse(text, 0)
        assert [c.outcome for c in run.cases] == ["error"] and why in run.cases[0].message
    empty = get_parser("junit").parse("", 0)
    assert [c.outcome for c in empty.cases] == ["error"] and "empty" in empty.cases[0].message


def test_exit_code_parser():
    p = get_parser("exit-code")
    ok = p.parse("all good\n", 0, tester="smoke")
    assert [(c.name, c.outcome) for c in ok.cases] == [("smoke", "passed")] and ok.cases[
        0
    ].output == "all good"
    bad = p.parse("boom\n", 3, tester="smoke")
    assert bad.cases[0].outcome == "failed" and bad.cases[0].message == "exited with code 3"
    unknown = p.parse("", None, tester="smoke")
    assert unknown.cases[0].outcome == "error"


def test_junit_writer_round_trips_through_the_junit_parser():
    run = TesterRun(
        "http-tester",
        "http-tester",
        [
            CaseResult("A", "passed", 1.5, "ok", "out a"),
            CaseResult("B", "failed", 0.5, "boom", "trace\x07 b"),
            CaseResult("C", "error", None, "crash", ""),
            CaseResult("D", "not_run", None, "never started", ""),
            CaseResult("E", "unclear", None, "unclear", "meh"),
        ],
        1,
        {},
        ["a warning"],
        "",
    )
    text = ET.tostring(to_junit(run).getroot(), encoding="unicode")
    suite = ET.fromstring(text)
    assert suite.get("name") == "http-tester" and suite.get("tests") == "5"
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("1", "1", "1")
    assert {tc.get("classname") for tc in suite.iter("testcase")} == {"tester.http-tester"}
    unclear = next(tc for tc in suite.iter("testcase") if tc.get("name") == "E")
    assert unclear.find("properties/property").get("value") == "unclear"
    back = get_parser("junit").parse(text, None)
    assert [(c.name, c.outcome) for c in back.cases] == [
        ("tester.http-tester.A", "passed"),
        ("tester.http-tester.B", "failed"),
        ("tester.http-tester.C", "error"),
        ("tester.http-tester.D", "not_run"),
        ("tester.http-tester.E", "passed"),
    ]
    assert back.case("tester.http-tester.A").duration == 1.5
    assert "trace\\x07 b" in back.case("tester.http-tester.B").output  # control character escaped


def test_to_dict_round_trip():
    run = get_parser("edge-tester").parse(read("edge_fail.log"), 1)
    d = run.to_dict()
    assert d["counts"] == {"passed": 2, "failed": 2, "not_run": 0, "unclear": 0} and d["ok"] is False
    assert TesterRun.from_dict(d) == run


# --- property: noise lines interleaved anywhere do not change the results --------------------

_noise = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=60
).map(lambda s: "  " + s)  # indented: the way programs print their own lines; never a marker
# (inside edge-tester's summary block "   - NAME" / "   Total: N" are data, so noise is only
# interleaved before it, and never looks like the registered-tests count)
_noise = _noise.filter(lambda s: not s.strip().startswith("Total tests registered"))
_plain_noise = st.sampled_from(
    [
        "info: Microsoft.Hosting.Lifetime[0] Application started. PASSED",
        "✅ Bannou is healthy",
        "❌ retrying connection",
        "Total: 12 requests",
        "⏳ Waiting for bannou at http://x/health (attempt 3/60)...",
        "Test run PASSED",
        "\x1b[32mgreen\x1b[0m text",
        "",
    ]
)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_noise_never_changes_console_results(data):
    for fmt, name in (("http-tester", "http_fail.log"), ("edge-tester", "edge_fail.log")):
        lines = read(name).splitlines()
        noisy: list[str] = []
        in_summary = False
        for line in lines:
            noisy.append(line)
            in_summary = in_summary or "TEST SUMMARY" in line
            if in_summary:
                continue
            noisy.extend(data.draw(st.lists(st.one_of(_noise, _plain_noise), max_size=2)))
        parser = get_parser(fmt)
        expected = parser.parse("\n".join(lines), 1)
        got = parser.parse("\r\n".join(noisy), 1)
        assert [(c.name, c.outcome, c.message) for c in got.cases] == [
            (c.name, c.outcome, c.message) for c in expected.cases
        ]
