"""Issue 14 point 1: every test starts from its environment as the preset defines it. A test
that changes the environment (update, scale, restart with new settings, rollback) leaves nothing
behind for the next test of the same preset; tests that change nothing pay nothing."""

from __future__ import annotations

import re

import pytest

from tests.support.bannou_pytester import deploy_lines

HELPERS = """
import pytest
from pathlib import Path

pytestmark = pytest.mark.preset("beta")
SEEN = {}


def environ(env, node):
    '''The real environment of the node's (first) process.'''
    pid = next(int(s.id) for s in env.status() if s.node == node and s.state == "running")
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\\0")
    return dict(x.decode().split("=", 1) for x in raw if b"=" in x)


def pids(env):
    return {(s.node, s.replica): s.id for s in env.status()}


def running(env, node):
    return len([s for s in env.status() if s.node == node and s.state == "running"])


def leak(env, value):
    return env.update([{"action": "update-env", "nodeName": "authn", "environment": {"LEAK": value}}])
"""


def restore_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if line.startswith("bannou: restoring ")]


def test_changes_of_one_test_do_not_leak_into_the_next(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        HELPERS
        + """
def test_1_update(bannou_env):
    SEEN["start"] = pids(bannou_env)
    assert bannou_env.config_version == 1
    assert leak(bannou_env, "update") == 2
    assert environ(bannou_env, "authn")["LEAK"] == "update"


def test_2_after_update_then_scale(bannou_env):
    assert bannou_env.config_version == 1
    assert "LEAK" not in environ(bannou_env, "authn")
    assert "LEAK" not in bannou_env.topology.node("authn").environment
    now = pids(bannou_env)
    assert now[("main", 0)] == SEEN["start"][("main", 0)]  # only the changed node restarted
    assert now[("authn", 0)] != SEEN["start"][("authn", 0)]
    SEEN["main"] = now[("main", 0)]
    bannou_env.scale("main", 2)
    assert running(bannou_env, "main") == 2


def test_3_after_scale_then_restart_with_environment(bannou_env):
    assert bannou_env.topology.node("main").replicas == 1
    assert running(bannou_env, "main") == 1
    assert pids(bannou_env)[("main", 0)] == SEEN["main"]  # scaled back, not restarted
    bannou_env.restart("authn", environment={"LEAK": "restart"})
    assert environ(bannou_env, "authn")["LEAK"] == "restart"
    assert bannou_env.config_version == 2


def test_4_after_restart_then_update_twice_and_rollback(bannou_env):
    assert bannou_env.config_version == 1
    assert "LEAK" not in environ(bannou_env, "authn")
    leak(bannou_env, "one")
    leak(bannou_env, "two")
    assert bannou_env.rollback() == 4  # version 2's configuration, recorded as version 4
    assert bannou_env.config_version == 4
    assert environ(bannou_env, "authn")["LEAK"] == "one"


def test_5_after_rollback(bannou_env):
    assert bannou_env.config_version == 1
    assert "LEAK" not in environ(bannou_env, "authn")
    with pytest.raises(Exception, match="nothing to roll back"):
        bannou_env.rollback()
"""
    )
    result = bannou_pytester.run_subprocess("-p", "no:randomly", "-v", timeout=300)
    result.assert_outcomes(passed=5)
    assert len(deploy_lines(result)) == 1
    lines = restore_lines(result)
    assert len(lines) == 4, result.outlines
    pattern = r"bannou: restoring beta \(a test changed it\): .+ ready in \d+\.\d s"
    for line in lines:
        assert re.fullmatch(pattern, line), line
    assert "recreate authn" in lines[0] and "scale main" in lines[1] and "recreate authn" in lines[2]


def test_a_suite_that_changes_nothing_pays_nothing(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        HELPERS
        + """
def test_1(bannou_env):
    SEEN["start"] = pids(bannou_env)


def test_2_plain_restart_changes_no_topology(bannou_env):
    bannou_env.restart("authn")


def test_3(bannou_env, bannou_http):
    now = pids(bannou_env)
    assert now[("main", 0)] == SEEN["start"][("main", 0)]
    assert bannou_env.config_version == 1
    assert bannou_http.get("/health").status_code == 200


def test_4_no_environment():
    pass
"""
    )
    result = bannou_pytester.run_subprocess("-p", "no:randomly", timeout=300)
    result.assert_outcomes(passed=4)
    assert len(deploy_lines(result)) == 1
    assert restore_lines(result) == []
    assert not any("transition to" in line for line in result.outlines)
