"""results.json: round trip, the schema documents the model, and bad files get clear errors."""

from __future__ import annotations

import dataclasses
import json

import pytest

from pytest_bannou.errors import BannouError
from pytest_bannou.report import (
    SCHEMA_VERSION,
    PresetRecord,
    ReportFileError,
    RunReport,
    TestRecord,
    matrix_row,
    model,
    read_json,
    write_json,
)
from pytest_bannou.report.json_io import SCHEMA_PATH, dumps, schema, validate


def test_round_trip_keeps_every_field(tmp_path, sample_report):
    sample_report.sources = ["run-a1 - local gw0"]
    sample_report.worker = "gw0"
    path = write_json(sample_report, tmp_path / "out" / "results.json")
    back = read_json(path)
    assert back == sample_report
    assert back.presets[1].timeline[0].event == "transition"
    assert back.tests[-1].preset is None
    # stable text: writing what was read gives the same bytes
    assert dumps(back) == path.read_text(encoding="utf-8")


def test_written_file_is_plain_readable_json(tmp_path, sample_report):
    path = write_json(sample_report, tmp_path / "results.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["presets"][0]["timeline"][0] == {
        "event": "deploy",
        "t_start": sample_report.presets[0].timeline[0].t_start,
        "t_end": sample_report.presets[0].timeline[0].t_end,
    }
    assert path.stat().st_mode & 0o044  # readable by CI artifact uploaders, not 0600
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def _props(name: str) -> set[str]:
    root = schema()
    if name == "run":
        return set(root["properties"])
    return set(root["$defs"][name]["properties"])


@pytest.mark.parametrize(
    ("cls", "name"), [(RunReport, "run"), (PresetRecord, "preset"), (TestRecord, "test")]
)
def test_schema_documents_exactly_the_model(cls, name):
    assert {f.name for f in dataclasses.fields(cls)} == _props(name)


def test_schema_fields_all_have_descriptions_or_enums():
    root = schema()
    assert root["description"]
    for name in ("preset", "test"):
        assert root["$defs"][name]["description"]
    undocumented = [
        key for key, spec in root["properties"].items() if "description" not in spec and "enum" not in spec
    ]
    assert undocumented == []


def _write(tmp_path, data, name="results.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda d: d["tests"][3].__setitem__("outcome", "pass"), "tests[3].outcome", "not one of passed"),
        (lambda d: d["tests"][0].pop("nodeid"), "tests[0].nodeid", "required field is missing"),
        (lambda d: d["presets"][1].__setitem__("deploy_s", "3s"), "presets[1].deploy_s", "expected number"),
        (lambda d: d["presets"][0].__setitem__("deploy_s", -1), "presets[0].deploy_s", "below the minimum"),
        (lambda d: d["presets"][0].__setitem__("nodez", []), "presets[0].nodez", "unknown field"),
        (
            lambda d: d["presets"][0]["restarts"].__setitem__("bannou", "x"),
            "presets[0].restarts.bannou",
            "expected integer",
        ),
        (lambda d: d["presets"][0]["timeline"][2].pop("t_end"), "presets[0].timeline[2].t_end", "missing"),
        (lambda d: d.__setitem__("tests", {}), "tests", "expected array"),
        (lambda d: d.__setitem__("run_id", ""), "run_id", "must not be empty"),
        (lambda d: d.__setitem__("started_at", True), "started_at", "expected number"),
    ],
)
def test_schema_errors_name_file_and_field(tmp_path, sample_report, mutate, field, words):
    data = json.loads(dumps(sample_report))
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(ReportFileError) as info:
        read_json(path)
    message = str(info.value)
    assert message.startswith(f"{path}: field {field}: ")
    assert words in message
    assert isinstance(info.value, BannouError)


def test_unknown_field_error_lists_known_fields(tmp_path, sample_report):
    data = json.loads(dumps(sample_report))
    data["tests"][0]["outcom"] = "passed"
    with pytest.raises(ReportFileError, match=r"unknown field \(known fields here: nodeid, preset, outcome"):
        read_json(_write(tmp_path, data))


def test_not_json_names_line_and_column(tmp_path, sample_report):
    path = tmp_path / "results.json"
    path.write_text(dumps(sample_report)[:200], encoding="utf-8")  # a job killed mid-write
    with pytest.raises(ReportFileError, match=rf"^{path}:\d+:\d+: not valid JSON .*truncated"):
        read_json(path)


def test_missing_file_and_directory_and_binary(tmp_path):
    with pytest.raises(ReportFileError, match="no such results file"):
        read_json(tmp_path / "nope.json")
    with pytest.raises(ReportFileError, match="is a directory"):
        read_json(tmp_path)
    binary = tmp_path / "b.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ReportFileError, match="not UTF-8"):
        read_json(binary)


def test_newer_schema_version_says_upgrade(tmp_path, sample_report):
    data = json.loads(dumps(sample_report))
    data["schema_version"] = SCHEMA_VERSION + 1
    data["something_new"] = 1
    with pytest.raises(ReportFileError, match=r"newer pytest-bannou .* upgrade"):
        read_json(_write(tmp_path, data))


def test_top_level_must_be_an_object():
    with pytest.raises(ReportFileError, match=r"field \(top level\): expected object, got \[\]"):
        validate([], "x.json")


def test_writing_nan_is_refused(tmp_path, sample_report):
    sample_report.tests[0].duration = float("nan")
    with pytest.raises(ValueError):
        write_json(sample_report, tmp_path / "r.json")
    assert not list(tmp_path.iterdir())


def test_schema_file_ships_inside_the_package():
    assert SCHEMA_PATH.parent.name == "report"
    assert json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))["title"].startswith("pytest-bannou")


def test_tester_nodeid_and_matrix_row():
    assert (
        model.tester_nodeid("http-tester", "Test Login", "monolith")
        == "tester::http-tester::Test Login[monolith]"
    )
    assert model.tester_nodeid("edge-tester", "Meta", None) == "tester::edge-tester::Meta"
    assert matrix_row("t.py::test_a[split-auth]", "split-auth") == "t.py::test_a"
    assert matrix_row("t.py::test_b[1-split-auth]", "split-auth") == "t.py::test_b[1]"
    assert matrix_row("t.py::test_b[split-auth-x]", "split-auth") == "t.py::test_b[x]"
    assert matrix_row("t.py::test_c[other]", "split-auth") == "t.py::test_c[other]"
    assert matrix_row("t.py::test_d[monolith]", "monolith@job-a", "monolith") == "t.py::test_d"
    assert matrix_row("t.py::test_e", None) == "t.py::test_e"
    assert matrix_row("tester::h::Case A[monolith]", "monolith") == "tester::h::Case A"


def test_faults_round_trip_and_are_checked_by_the_schema(tmp_path, sample_report):
    from pytest_bannou.report import FaultRecord

    fault = FaultRecord(
        "kill", "auth", at=sample_report.started_at + 1, replica=0, env_key="monolith", test="t::a"
    )
    sample_report.presets[0].faults = [fault, FaultRecord("restart", "auth", at=fault.at + 1, undo=True)]
    sample_report.tests[0].faults = [fault]
    path = write_json(sample_report, tmp_path / "results.json")
    assert read_json(path) == sample_report
    data = json.loads(path.read_text(encoding="utf-8"))
    data["tests"][0]["faults"][0]["action"] = "explode"
    with pytest.raises(
        ReportFileError, match=r"field tests\[0\]\.faults\[0\]\.action: \"explode\" is not one of kill"
    ):
        validate(data)
    # a file written before faults were recorded still reads (no version bump)
    for part in (*data["presets"], *data["tests"]):
        part.pop("faults", None)
    validate(data)
