"""A live change that fails leaves a running environment as it was (issue 12, point 8): a node
name that is a path writes nothing outside the run directory, a value no process can carry
does not stop the node it was meant for, and the configuration version stays where it was."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_bannou.environment import Environment, EnvironmentManager, make_options
from pytest_bannou.environment.live import ChangeError
from pytest_bannou.errors import DeployError
from pytest_bannou.preset import PresetLibrary


@pytest.fixture(scope="module")
def plain_env(presets_dir: Path) -> Iterator[tuple[EnvironmentManager, Environment]]:
    manager = EnvironmentManager("local", make_options(ready_timeout=120))
    try:
        yield manager, manager.activate("plain", PresetLibrary([presets_dir]).resolve("plain"))
    finally:
        manager.teardown(remove_workdir=True)


def _state(env: Environment) -> tuple:
    return env.config_version, env.topology, sorted((s.node, s.replica, s.id, s.state) for s in env.status())


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"action": "add-node", "nodeConfig": {"name": "../../x"}}, "invalid name '../../x'"),
        (
            {"action": "update-env", "nodeName": "bannou-main", "environment": {"A": "x\x00y"}},
            "contains a NUL character",
        ),
        (
            {"action": "update-env", "nodeName": "bannou-main", "environment": {"A=B": "1"}},
            "environment key 'A=B' contains `=`",
        ),
    ],
)
def test_a_refused_live_change_leaves_the_environment_as_it_was(plain_env, change, fragment):
    manager, env = plain_env
    # where the local backend wrote the log of a node named ../../x (its directory is <run>/local)
    escaped = (manager.options.workdir / "local" / "../../x-0.log").resolve()
    assert not escaped.exists()
    before = _state(env)
    with pytest.raises(ChangeError) as err:
        env.update([change])
    assert fragment in err.value.message and "nothing was applied" in err.value.message
    assert _state(env) == before
    assert all(state == "running" for *_, state in before[2])
    assert not escaped.exists()


def test_a_change_that_fails_outside_the_plugin_is_undone(plain_env):
    """A failure that is not the plugin's own (here the filesystem: the log file of the new
    replica cannot be opened) undoes the change like a node that does not start."""
    manager, env = plain_env
    local = manager.options.workdir / "local"
    # non-empty directories where the new replica's log (and the previous one) would go
    blockers = [local / "bannou-main-1.log", local / "bannou-main-1.previous.log"]
    for d in blockers:
        (d / "x").mkdir(parents=True)
    try:
        before = _state(env)
        with pytest.raises(DeployError) as err:
            env.update([{"action": "scale", "nodeName": "bannou-main", "replicas": 2}])
        assert "failed and was undone (configuration version 1 again)" in err.value.message
        # the filesystem error is named (by the backend, or as the exception type when it is not ours)
        assert "bannou-main-1" in err.value.message
        assert _state(env) == before
    finally:
        for d in blockers:
            shutil.rmtree(d, ignore_errors=True)
