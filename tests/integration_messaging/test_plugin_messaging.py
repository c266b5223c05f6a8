"""End to end through pytest: a preset with redis and rabbitmq infrastructure, used by tests
through the ``bannou_env`` / ``bannou_http`` fixtures (an inner pytest session in a subprocess,
which starts and removes its own infrastructure)."""

from __future__ import annotations

import re

from pytest_bannou.environment.runs import runs_root
from tests.support.bannou_pytester import BannouPytester
from tests.support.messaging_presets import write_presets

INNER = """
import time

import pytest


def wait_reason(env, node, text, timeout=30):
    end = time.monotonic() + timeout
    while True:
        decision = env.should_restart(node)
        if text in decision.reason or time.monotonic() > end:
            return decision
        time.sleep(0.1)


@pytest.mark.preset("msg-split")
def test_heartbeats_routing_and_policy(bannou_env, bannou_http):
    assert bannou_http.post("/auth/login", json={}).json()["appId"] == "bannou-auth"
    assert not wait_reason(bannou_env, "bannou-auth", "is healthy").restart
    assert bannou_env.heartbeats()["bannou-auth"].status == "healthy"
    bannou_env.restart("bannou-main", environment={"BANNOU_REFERENCE_HEARTBEAT_STATUS": "unavailable"})
    assert wait_reason(bannou_env, "bannou-main", "unavailable").restart
    assert bannou_env.config_version == 2


@pytest.mark.preset("msg-split")
def test_changes_and_rollback(bannou_env, bannou_http):
    version = bannou_env.config_version
    bannou_env.update([{"action": "move-service", "nodeName": "bannou-main", "services": ["auth"]}])
    assert bannou_env.config_version == version + 1
    assert bannou_http.post("/auth/login", json={}).json()["appId"] == "bannou"
    assert bannou_env.rollback() == version + 2  # a rollback is a new version
    assert bannou_env.config_version == version + 2
    assert bannou_http.post("/auth/login", json={}).json()["appId"] == "bannou-auth"
"""


def test_plugin_session_with_messaging_infrastructure(
    bannou_pytester: BannouPytester, infra_servers: None
) -> None:
    write_presets(bannou_pytester.presets)
    bannou_pytester.pytester.makepyfile(test_inner=INNER)
    result = bannou_pytester.run_subprocess("--bannou-heartbeat-interval=0.3", "-v", timeout=240)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["bannou: deploying msg-split on local: 4 nodes ... ready in * s"])
    run_id = next(m.group(1) for line in result.outlines if (m := re.search(r"run id (bannou-[\w-]+)", line)))
    assert not (runs_root() / run_id).exists(), "a clean run removes its run directory"
