"""Issue 17 with messaging on: a paused node's heartbeats stop, the monitor sees it go, the
restart policy says restart; a killed node that comes back publishes heartbeats again."""

from __future__ import annotations

import pytest

from pytest_bannou.environment.environment import Environment
from pytest_bannou.environment.manager import EnvironmentManager
from pytest_bannou.messaging.contract import MessagingError
from pytest_bannou.messaging.session import settings_from
from pytest_bannou.preset import PresetLibrary


def test_paused_node_heartbeat_goes_and_the_policy_says_restart(msg_env: Environment) -> None:
    assert not msg_env.wait_for_heartbeat("bannou-auth", "healthy", timeout=60).restart
    with msg_env.paused("auth"):
        gone = msg_env.wait_for_heartbeat("bannou-auth", status="unavailable", timeout=60)
        assert gone.restart and "restart needed" in gone.reason
        assert msg_env.should_restart("bannou-auth").restart
        with pytest.raises(MessagingError, match=r"did not reach heartbeat status 'healthy' within 0\.5s"):
            msg_env.wait_for_heartbeat("bannou-auth", "healthy", timeout=0.5)
    back = msg_env.wait_for_heartbeat("bannou-auth", "healthy", timeout=60)
    assert not back.restart and not msg_env.should_restart("bannou-auth").restart


def test_killed_node_comes_back_with_heartbeats_before_the_next_test(
    msg_env: Environment, manager: EnvironmentManager, library: PresetLibrary
) -> None:
    msg_env.wait_for_heartbeat("bannou-auth", "healthy", timeout=60)
    msg_env.kill("bannou-auth")
    assert msg_env.wait_for_heartbeat("bannou-auth", status="unavailable", timeout=60).restart
    again = manager.activate("msg-split", library.resolve("msg-split"))  # what the next test does
    assert again is msg_env
    assert not again.wait_for_heartbeat("bannou-auth", "healthy", timeout=60).restart
    actions = [(f["action"], f["node"], f["undo"]) for f in manager.records["msg-split"].faults]
    assert ("kill", "bannou-auth", False) in actions and ("restart", "bannou-auth", True) in actions


def test_the_degraded_threshold_option_reaches_the_monitor_settings() -> None:
    assert settings_from({"bannou_degraded_threshold": "2.5"}).degraded_threshold == 2.5
    assert settings_from({}).degraded_threshold == 300.0
