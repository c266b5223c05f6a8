"""``bannou-env`` given bad input: one clear message and exit 1 or 2, never a traceback or a hang."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from pytest_bannou.cli import main as cli_main
from tests.support.runs_root import private_runs_root

RUN_ID = "bannou-0000abcd"  # well formed, never deployed


@pytest.fixture(autouse=True)
def own_runs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private_runs_root(tmp_path, monkeypatch)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and stderr of ``bannou-env ARGV`` (argparse errors exit through SystemExit)."""
    try:
        code = cli_main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize("tail", ["-5", "abc"])
def test_logs_tail_must_be_a_whole_number(tail, capsys):
    code, err = run(["logs", RUN_ID, "main", "--tail", tail], capsys)
    assert code == 2
    assert f"argument --tail: {tail!r} is not a whole number of lines >= 0" in err


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "soon"])
@pytest.mark.parametrize(
    "command", [["deploy", "monolith"], ["update", RUN_ID, "scale:main=2"], ["rollback", RUN_ID]]
)
def test_ready_timeout_must_be_finite_and_positive(command, value, capsys):
    code, err = run([*command, "--ready-timeout", value], capsys)
    assert code == 2
    assert f"argument --ready-timeout: {value!r}" in err and "seconds" in err


def test_update_with_deeply_nested_json_is_one_message(capsys):
    deep = '{"action": "scale", "nodeName": ' + "[" * 100_000 + "]" * 100_000 + "}"
    code, err = run(["update", RUN_ID, deep], capsys)
    assert code == 1
    assert "nested too deeply" in err
    assert len(err) < 500  # the change is quoted shortened


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('{"action": "add-node", "nodeConfig": "str"}', "nodeConfig must be an object, got a string"),
        (
            '{"action": "add-node", "nodeConfig": {"name": "x", "environment": "A=1"}}',
            "nodeConfig.environment",
        ),
        ('{"action": "add-node", "nodeConfig": {"name": "x", "services": "auth"}}', "nodeConfig.services"),
        ('{"action": "add-node", "nodeConfig": {"name": ["x"]}}', "nodeConfig.name"),
        ('{"action": "update-env", "environment": ["A=1"]}', "environment must be an object"),
        ('{"action": "update-env", "environment": {"A": {"B": 1}}}', "environment.A"),
        ('{"action": "scale", "nodeName": {"a": 1}, "replicas": 2}', "nodeName must be a string"),
        ('{"action": 7}', "action must be a string"),
        (
            '{"action": "move-service", "nodeName": "main", "services": [1]}',
            "services must be a list of strings",
        ),
    ],
)
def test_update_with_wrongly_typed_json_is_one_message(change, message, capsys):
    code, err = run(["update", RUN_ID, change], capsys)
    assert code == 1
    assert message in err, err


def test_update_checks_the_change_before_looking_for_the_run(capsys):
    code, err = run(["update", RUN_ID, "scale:main=2"], capsys)
    assert code == 1
    assert f"no environment {RUN_ID!r}" in err
    assert not os.path.exists(Path(tempfile.gettempdir()) / f"pytest-bannou-{os.getuid()}" / RUN_ID)
