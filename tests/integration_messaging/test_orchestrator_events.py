"""Issue 15 point 5: the ServiceRestart and ConfigurationChanged events bannou's orchestrator
publishes, sent by the plugin on exchange ``bannou`` when it restarts a node and when the
configuration changes, consumed from a real rabbitmq-server and checked against bannou's own
event schemas (``../shared/upstream-schemas/orchestrator-events.yaml``)."""

from __future__ import annotations

import re
import subprocess
import sys
import time

from pytest_bannou.messaging.contract import EXCHANGE
from tests.support.bannou_pytester import BannouPytester
from tests.support.bannou_schemas import check_event, topic_of

EVENTS = "orchestrator-events.yaml"
RESTART = topic_of(EVENTS, "ServiceRestartEvent")  # bannou.service-lifecycle
CONFIGURATION = topic_of(EVENTS, "ConfigurationChangedEvent")  # bannou.configuration-events
STATUS = "BANNOU_REFERENCE_HEARTBEAT_STATUS"


LONE = """
name: lone
description: one node, no infrastructure
topology:
  nodes:
    - name: lone-main
      appId: lone
"""


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_bannou.cli", *args], capture_output=True, text=True, timeout=180
    )
    assert not check or proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def restart_event(events, app_id: str) -> dict:
    body = events.until(RESTART, lambda b: b["serviceName"] == app_id, timeout=30)
    check_event(EVENTS, "ServiceRestartEvent", body)
    return body


def configuration_event(events, version: int) -> dict:
    body = events.until(CONFIGURATION, lambda b: b["configVersion"] == version, timeout=30)
    check_event(EVENTS, "ConfigurationChangedEvent", body)
    return body


def pid(env, node: str) -> str:
    return next(s.id for s in env.status() if s.node == node and s.replica == 0)


def test_restarts_and_configuration_changes_are_published_as_bannou_names_them(msg_env, manager, consume):
    assert EXCHANGE == "bannou"  # the consumer binds to bannou's exchange with bannou's topics
    events = consume(manager.messaging.broker_url, RESTART, CONFIGURATION)
    start = msg_env.config_version

    # a plain restart: a ServiceRestartEvent, no new configuration
    before = pid(msg_env, "bannou-main")
    msg_env.restart("bannou-main")
    assert pid(msg_env, "bannou-main") != before
    plain = restart_event(events, "bannou")  # the node's app id, bannou's name of the instance
    assert plain["reason"] == "restart bannou-main requested by the test"
    assert plain["forced"] is False and plain["newEnvironment"] is None
    assert msg_env.config_version == start
    assert [k for k, _ in events.drain()] == []  # nothing else: no configuration change

    # a restart with new settings: the node restarts with them, configuration version start + 1
    msg_env.restart("bannou-main", environment={STATUS: "degraded", "AUTH_TOKEN": "s3cret-value"})
    changed = restart_event(events, "bannou")
    assert changed["newEnvironment"] == {STATUS: "degraded", "AUTH_TOKEN": "******"}  # masked
    assert f"configuration version {start + 1}: update-env bannou-main" in changed["reason"]
    config = configuration_event(events, start + 1)
    assert config["changedKeys"] == [
        "nodes.bannou-main.environment.AUTH_TOKEN",
        f"nodes.bannou-main.environment.{STATUS}",
    ]
    assert "s3cret-value" not in str(config) + str(changed)

    # scale: a new version, no restart
    assert msg_env.scale("bannou-auth", 2) == start + 2
    key, scaled = events.get(timeout=30)  # the first message after it
    assert key == CONFIGURATION and scaled["configVersion"] == start + 2
    check_event(EVENTS, "ConfigurationChangedEvent", scaled)
    assert scaled["changedKeys"] == ["nodes.bannou-auth.replicas"]

    # rollback to the start: a new version again; bannou-main restarts with its old settings
    # (events come in order: the restart, then the configuration change)
    assert msg_env.rollback(version=start) == start + 3
    rolled = restart_event(events, "bannou")
    assert rolled["reason"].startswith(
        f"configuration version {start + 3}: rollback to configuration version {start}"
    )
    assert rolled["newEnvironment"] is None  # settings were removed, none set
    back = configuration_event(events, start + 3)
    assert set(back["changedKeys"]) == {
        "nodes.bannou-main.environment.AUTH_TOKEN",
        f"nodes.bannou-main.environment.{STATUS}",
        "nodes.bannou-auth.replicas",
    }
    rest = events.drain()
    assert [k for k, _ in rest] == []  # bannou-auth was scaled back, not restarted

    versions = msg_env.config_versions
    assert [v.version for v in versions] == [start, start + 1, start + 2, start + 3]
    assert versions[-1].changes == (f"rollback to configuration version {start}",)
    assert all(v.timestamp and abs(v.timestamp - time.time()) < 600 for v in versions)


def test_a_failed_change_publishes_no_configuration_event(msg_env, manager, consume):
    events = consume(manager.messaging.broker_url, RESTART, CONFIGURATION)
    version = msg_env.config_version
    try:
        msg_env.update(
            [
                {
                    "action": "update-env",
                    "nodeName": "bannou-auth",
                    "environment": {"BANNOU_REFERENCE_EXIT_CODE": "3"},
                }
            ]
        )
    except Exception as exc:
        assert "failed and was undone" in str(exc)
    else:
        raise AssertionError("the change should have failed")
    assert msg_env.config_version == version
    assert [k for k, _ in events.drain(settle=1.0)] == []


def test_heartbeat_ttl_and_restart_threshold_options_reach_redis_and_the_policy(
    bannou_pytester: BannouPytester, msg_env, manager, redis_server, monkeypatch
):
    """The env twin of the TTL and the ini key of the threshold, in a real session: the stored
    heartbeats expire after the TTL given, the restart policy uses the threshold given."""
    # its own app id: msg_env's node "bannou" sends heartbeats to the same broker
    bannou_pytester.preset("lone", LONE)
    monkeypatch.setenv("BANNOU_HEARTBEAT_TTL", "4")
    bannou_pytester.pytester.makeini("[pytest]\nbannou_degraded_threshold = 2\n")
    bannou_pytester.pytester.makepyfile(
        test_inner="""
        import time

        import pytest
        from pytest_bannou.messaging.heartbeats import connect_redis


        def reason(env, text):
            end = time.monotonic() + 60
            while text not in (decision := env.should_restart("lone-main")).reason:
                assert time.monotonic() < end, decision.reason
                time.sleep(0.1)
            return decision


        @pytest.mark.preset("lone")
        def test_settings(bannou_env):
            messaging = bannou_env._manager.messaging
            messaging.wait_heartbeat("lone")
            client = connect_redis(messaging.redis_url)
            try:
                assert 0 < client.pttl("orch:hb:lone") <= 4000
            finally:
                client.close()
            bannou_env.restart("lone-main", environment={"BANNOU_REFERENCE_HEARTBEAT_STATUS": "degraded"})
            assert not reason(bannou_env, "under the 2s threshold").restart
            assert reason(bannou_env, "restart recommended").restart
        """
    )
    result = bannou_pytester.run_subprocess(
        f"--bannou-amqp-url={manager.messaging.broker_url}",
        f"--bannou-redis-url={redis_server.url}",
        "--bannou-heartbeat-interval=0.2",
        timeout=180,
    )
    result.assert_outcomes(passed=1)


def test_bannou_env_update_and_rollback_publish_the_events_too(
    bannou_pytester: BannouPytester, msg_env, manager, consume
):
    """A run kept with the session's broker: ``bannou-env update``/``rollback`` publish what
    ``bannou_env.update``/``rollback`` do, to that broker."""
    broker = manager.messaging.broker_url
    bannou_pytester.preset("lone", LONE)
    bannou_pytester.pytester.makepyfile(
        test_inner="""
        import pytest

        @pytest.mark.preset("lone")
        def test_up(bannou_env):
            assert bannou_env.url()
        """
    )
    result = bannou_pytester.run_subprocess(f"--bannou-amqp-url={broker}", "--bannou-keep", timeout=180)
    result.assert_outcomes(passed=1)
    run_id = next(m.group(1) for line in result.outlines if (m := re.search(r"run id (bannou-[\w-]+)", line)))
    events = consume(broker, RESTART, CONFIGURATION)
    try:
        cli("update", run_id, "update-env:lone-main:FEATURE_X=1")
        restart = restart_event(events, "lone")
        assert restart["newEnvironment"] == {"FEATURE_X": "1"}
        assert restart["reason"] == "configuration version 2: update-env lone-main FEATURE_X=1"
        assert configuration_event(events, 2)["changedKeys"] == ["nodes.lone-main.environment.FEATURE_X"]

        cli("rollback", run_id, "--version", "1")
        assert restart_event(events, "lone")["newEnvironment"] is None
        assert configuration_event(events, 3)["changedKeys"] == ["nodes.lone-main.environment.FEATURE_X"]
    finally:
        cli("clean", "--run-id", run_id, "--backend", "local", check=False)
