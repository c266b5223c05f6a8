"""``bannou-env report merge|render``: files in, the three report files out, clear errors."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from pytest_bannou import cli
from pytest_bannou.cli import report_cmd
from pytest_bannou.errors import BannouError
from pytest_bannou.report import read_json, write_json


def run(argv: list[str]) -> int:
    """What ``bannou-env`` does with the report command group (whether or not it is registered)."""
    parser = argparse.ArgumentParser(prog="bannou-env")
    sub = parser.add_subparsers(dest="command")
    report_cmd.register(sub)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except BannouError as exc:
        print(f"bannou-env: {exc}", file=sys.stderr)
        return 1


def test_merge_two_ci_jobs(tmp_path, report_factory, capsys):
    a = write_json(report_factory(run_id="r1", ci_job="local"), tmp_path / "a" / "results.json")
    write_json(
        report_factory(run_id="r2", ci_job="docker", backend="compose"), tmp_path / "b" / "results.json"
    )
    out = tmp_path / "merged"
    assert run(["report", "merge", str(a), str(tmp_path / "b"), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "report.html", "results.json"]
    merged = read_json(out / "results.json")
    assert {p.env_key for p in merged.presets} == {
        "monolith@local",
        "split-auth@local",
        "monolith@docker",
        "split-auth@docker",
    }
    root = ET.parse(out / "junit.xml").getroot()
    assert int(root.get("tests")) == len(merged.tests)
    text = capsys.readouterr().out
    assert text.startswith("merged 2 reports (4 environments, 2 failed, 1 error,")
    assert str(out / "report.html") in text


def test_render_one_results_file(tmp_path, sample_report, capsys):
    src = write_json(sample_report, tmp_path / "results.json")
    assert run(["report", "render", str(src), "-o", str(tmp_path / "out")]) == 0
    assert read_json(tmp_path / "out" / "results.json") == sample_report
    assert '<table id="matrix-table">' in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "rendered 13 results of run run-a1" in capsys.readouterr().out


def test_bad_input_is_one_clear_message(tmp_path, sample_report, capsys):
    good = write_json(sample_report, tmp_path / "good.json")
    data = json.loads(good.read_text(encoding="utf-8"))
    data["tests"][2]["outcome"] = "PASSED"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    assert run(["report", "merge", str(good), str(bad), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f'bannou-env: {bad}: field tests[2].outcome: "PASSED" is not one of passed')
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing half-written
    assert run(["report", "render", str(tmp_path), "-o", str(tmp_path / "out")]) == 1
    assert "a directory without results.json" in capsys.readouterr().err


def test_output_directory_is_required(tmp_path):
    with pytest.raises(SystemExit) as info:
        run(["report", "merge", str(tmp_path / "a.json")])
    assert info.value.code == 2


@pytest.mark.skipif(
    "report_cmd" not in cli.COMMAND_MODULES,
    reason="report_cmd is not yet listed in pytest_bannou.cli.COMMAND_MODULES (the lead registers it)",
)
def test_bannou_env_report_end_to_end(tmp_path, sample_report):
    src = write_json(sample_report, tmp_path / "results.json")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_bannou.cli", "report", "render", str(src), "-o", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "report.html").is_file()


@pytest.mark.parametrize("depth", [200, 900, 990, 5_000, 200_000])
@pytest.mark.parametrize("command", ["merge", "render"])
def test_deeply_nested_json_is_one_clear_message(tmp_path, sample_report, capsys, depth, command):
    good = write_json(sample_report, tmp_path / "good.json")
    nested = "[" * depth + "]" * depth
    inputs = {
        "top": nested,
        "field": good.read_text(encoding="utf-8").replace('"run-a1"', nested, 1),
    }
    for where, text in inputs.items():
        bad = tmp_path / f"{where}.json"
        bad.write_text(text, encoding="utf-8")
        files = [str(good), str(bad)] if command == "merge" else [str(bad)]
        assert run(["report", command, *files, "-o", str(tmp_path / "out")]) == 1, where
        err = capsys.readouterr().err
        assert err.startswith(f"bannou-env: {bad}"), err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert not (tmp_path / "out").exists()


def test_unwritable_output_directory_is_one_clear_message(tmp_path, sample_report, capsys):
    src = write_json(sample_report, tmp_path / "results.json")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for target in (blocker, blocker / "out"):
        assert run(["report", "render", str(src), "-o", str(target)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"bannou-env: cannot write the report into {target}:"), err
        assert len(err.strip().splitlines()) == 1
