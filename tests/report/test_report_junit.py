"""junit.xml: parses with xml.etree, one suite per environment, preset/backend properties per case."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from pytest_bannou.report import TestRecord, write_junit
from pytest_bannou.report.junit import split_nodeid


def _cases(root: ET.Element) -> dict[str, ET.Element]:
    return {case.get("name"): case for case in root.iter("testcase")}


def _props(case: ET.Element) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in case.find("properties")}


def test_junit_parses_and_carries_properties(tmp_path, sample_report):
    path = write_junit(sample_report, tmp_path / "junit.xml")
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [
        "bannou[monolith]",
        "bannou[split-auth]",
        "bannou[(no preset)]",
    ]
    assert root.get("tests") == str(len(sample_report.tests))
    assert root.get("failures") == "1" and root.get("errors") == "1"
    assert root.get("skipped") == "3"  # 2 skipped + 1 not run

    cases = _cases(root)
    assert len(cases) == len(sample_report.tests)
    login = cases["test_login[split-auth]"]
    assert login.get("classname") == "tests.test_auth"
    props = _props(login)
    assert props["preset"] == "split-auth"
    assert props["backend"] == "local"
    assert props["kind"] == "pytest"
    assert props["outcome"] == "failed"
    assert props["preset_hash"].startswith("01abab")
    failure = login.find("failure")
    assert failure.get("message") == "def test_auth_login(bannou):"
    assert "assert 503 == 200" in failure.text

    nested = cases["test_skip[monolith]"]
    assert nested.get("classname") == "tests.test_auth.TestSessions"
    assert nested.find("skipped").get("message") == "no redis"

    suite_props = {p.get("name"): p.get("value") for p in suites[1].find("properties")}
    assert suite_props == {
        "run_id": "run-a1",
        "backend": "local",
        "preset": "split-auth",
        "preset_hash": sample_report.presets[1].preset_hash,
    }


def test_tester_cases_named_tester_tester_case_preset(tmp_path, sample_report):
    root = ET.parse(write_junit(sample_report, tmp_path / "j.xml")).getroot()
    cases = _cases(root)
    crash = cases["tester::http-tester::Test Crash Next[split-auth]"]
    assert crash.get("classname") == "tester.http-tester"
    assert _props(crash)["tester"] == "http-tester"
    assert _props(crash)["kind"] == "tester"
    skipped = crash.find("skipped")
    assert skipped.get("type") == "not_run"
    assert "exit 139" in skipped.get("message")
    unclear = cases["tester::edge-tester::Test Meta Endpoints[monolith]"]
    assert unclear.find("failure") is None and unclear.find("skipped") is None  # counts as a pass
    assert _props(unclear)["outcome"] == "unclear"
    assert "result unclear" in unclear.find("system-out").text
    assert cases["tester::http-tester::Test Account Create[monolith]"].get("time") == "0.120"


def test_error_case_and_no_preset_suite(tmp_path, sample_report):
    root = ET.parse(write_junit(sample_report, tmp_path / "j.xml")).getroot()
    case = _cases(root)["test_no_env"]
    assert case.find("error").get("message") == "fixture 'db' not found"
    props = _props(case)
    assert "preset" not in props and props["backend"] == "local"


def test_control_characters_and_ansi_survive_as_valid_xml(tmp_path, sample_report):
    sample_report.tests.append(
        TestRecord(
            "t.py::test_colour[monolith]",
            "monolith",
            "failed",
            0.1,
            "\x1b[31mE   assert 1 == 2\x1b[0m\nnul here:\x00 bell:\x07 <tag> & done",
        )
    )
    sample_report.ci_job = "matrix (docker, 3.12)"
    root = ET.parse(write_junit(sample_report, tmp_path / "j.xml")).getroot()
    case = _cases(root)["test_colour[monolith]"]
    failure = case.find("failure")
    assert failure.get("message") == "E   assert 1 == 2"
    assert "\\x00" in failure.text and "\\x07" in failure.text
    assert "<tag> & done" in failure.text
    assert _props(case)["ci_job"] == "matrix (docker, 3.12)"


def test_split_nodeid_without_module_path():
    assert split_nodeid(TestRecord("just-a-name", None, "passed")) == ("", "just-a-name")
    assert split_nodeid(TestRecord("a/b/test_x.py::test_y", None, "passed")) == ("a.b.test_x", "test_y")
