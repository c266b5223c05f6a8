"""Error messages of ``bannou-env`` that promised what they did not do: an add-node change with
``nodeName`` and a ``nodeConfig`` without a name, and an unknown preset (bannou-env's own flag
``--presets-dir``, and a "did you mean" as ``logs`` gives for a node)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_bannou.cli import main as cli_main
from pytest_bannou.environment.live import ChangeError, change_topology
from pytest_bannou.errors import UnknownPresetError
from pytest_bannou.preset import PresetLibrary
from tests.support.runs_root import private_runs_root


@pytest.fixture(autouse=True)
def own_runs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private_runs_root(tmp_path, monkeypatch, "BANNOU_PRESETS_DIR")
    monkeypatch.chdir(tmp_path)


def split_auth():
    return PresetLibrary(environ={}).resolve("split-auth")


def test_add_node_takes_its_name_from_node_name_when_node_config_has_none():
    change = {"action": "add-node", "nodeName": "bannou-x", "nodeConfig": {"replicas": 2}}
    topology = change_topology(split_auth(), [change])
    assert topology.node("bannou-x").replicas == 2


def test_add_node_with_two_different_names_says_so():
    change = {"action": "add-node", "nodeName": "bannou-x", "nodeConfig": {"name": "bannou-y"}}
    with pytest.raises(ChangeError) as info:
        change_topology(split_auth(), [change])
    message = info.value.message
    assert "(add-node bannou-x bannou-y)" in message
    assert "nodeName 'bannou-x' and nodeConfig.name 'bannou-y' differ" in message


def test_add_node_without_any_name_describes_the_change_without_none():
    with pytest.raises(ChangeError) as info:
        change_topology(split_auth(), [{"action": "add-node", "nodeConfig": {"replicas": 1}}])
    assert "None" not in info.value.message
    assert "add-node needs nodeConfig.name (or nodeName)" in info.value.message


def test_unknown_preset_in_bannou_env_names_its_own_flag_and_the_nearest_preset(capsys):
    try:
        code = cli_main(["deploy", "split-auht"])
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 1, err
    assert "unknown preset 'split-auht'" in err
    assert "did you mean 'split-auth'?" in err
    assert "--presets-dir" in err and "--bannou-presets-dir" not in err, err


def test_unknown_preset_under_pytest_keeps_pytests_flag_and_suggests():
    with pytest.raises(UnknownPresetError) as info:
        PresetLibrary(environ={}).path("monolit")
    assert "--bannou-presets-dir" in str(info.value)
    assert "did you mean 'monolith'?" in str(info.value)
