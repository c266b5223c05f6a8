"""One real environment (local backend: reference nodes + redis-server + rabbitmq-server as
infrastructure nodes) through heartbeats, the restart policy, mapping events, routing, every
topology change and rollback. The tests share it and leave it as they found it."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from pytest_bannou.environment.live import ChangeError
from pytest_bannou.environment.manager import EnvironmentManager
from pytest_bannou.environment.runs import make_options
from pytest_bannou.errors import DeployError
from pytest_bannou.health import probes as health
from pytest_bannou.messaging.broker import connect_broker
from pytest_bannou.messaging.contract import (
    DEPLOYMENT_TOPIC,
    EXCHANGE,
    HEARTBEAT_TOPIC,
    MAPPINGS_TOPIC,
    BrokerUnreachable,
)
from pytest_bannou.messaging.heartbeats import RedisUnreachable, connect_redis
from pytest_bannou.messaging.session import EnvMessaging, MessagingNotConfigured, MessagingSettings
from tests.support.bannou_pytester import BannouPytester
from tests.support.messaging_presets import write_presets
from tests.support.messaging_servers import free_port

STATUS = "BANNOU_REFERENCE_HEARTBEAT_STATUS"


def post(env, service_path: str, node: str | None = None) -> httpx.Response:
    return httpx.post(env.url(node) + service_path, json={"x": 1}, timeout=10)


def wait_decision(env, node: str, text: str, timeout: float = 30.0):
    """Poll the restart policy until its reason contains ``text`` (heartbeats are asynchronous)."""
    end = time.monotonic() + timeout
    while True:
        decision = env.should_restart(node)
        if text in decision.reason or time.monotonic() > end:
            return decision
        time.sleep(0.1)


def pids(env) -> dict[tuple[str, int], str]:
    return {(s.node, s.replica): s.id for s in env.status()}


# --- heartbeats, readiness, mappings ------------------------------------------------------------


def test_heartbeats_of_every_node_reach_redis_through_the_monitor(msg_env, manager):
    m = manager.messaging
    for app_id in ("bannou", "bannou-auth"):
        m.wait_heartbeat(app_id, "healthy")
    records = msg_env.heartbeats()
    assert {"bannou", "bannou-auth"} <= set(records)
    assert records["bannou-auth"].status == "healthy"
    assert {"account", "auth"} <= set(records["bannou-auth"].services)
    client = connect_redis(m.redis_url)
    try:
        # the monitor's TTL (3 s here), read while the key lives: a loaded machine may let it
        # lapse between two heartbeats, so some reading within the deadline is in range
        ttls = [client.pttl("orch:hb:bannou-auth")]
        end = time.monotonic() + 30
        while not 0 < ttls[-1] <= 3000 and time.monotonic() < end:
            time.sleep(0.05)
            ttls.append(client.pttl("orch:hb:bannou-auth"))
        assert 0 < ttls[-1] <= 3000, ttls[-5:]
        assert {b"bannou", b"bannou-auth"} <= client.smembers("orch:hb:_index")
    finally:
        client.close()


def test_readiness_probe_heartbeat_healthy(msg_env):
    node = msg_env.topology.node("bannou-auth")
    assert node.healthcheck.kind == "heartbeat"  # the environment became ready through it
    probe = health.probe_for(node)
    assert "heartbeat" in probe.describe()
    end = time.monotonic() + 30  # its last heartbeat may have lapsed on a loaded machine
    while not (result := probe.check(None, node, 0, 1.0)).ok and time.monotonic() < end:
        time.sleep(0.2)
    assert result.ok, result
    quiet = msg_env.topology.node("bannou-main")
    assert not probe.check(None, type(quiet)(name="x", app_id="never-seen"), 0, 1.0).ok


def test_deploy_published_mappings_that_every_node_applied(msg_env, manager):
    versions = manager.messaging.versions
    assert versions, "no mapping event was published after the deploy"
    for node in ("bannou-main", "bannou-auth"):
        body = httpx.get(msg_env.url(node) + "/health", timeout=5).json()
        assert body["mappingsVersion"] == versions[-1]


def test_split_preset_routes_auth_through_the_main_node_to_the_auth_node(msg_env):
    answer = post(msg_env, "/auth/login")
    assert answer.status_code == 200
    assert answer.json()["appId"] == "bannou-auth" and answer.json()["body"] == {"x": 1}
    assert post(msg_env, "/account/get").json()["appId"] == "bannou-auth"
    assert post(msg_env, "/game-session/list").json()["appId"] == "bannou"
    # the auth node sends what it does not host to the default app id
    assert post(msg_env, "/game-session/list", "bannou-auth").json()["appId"] == "bannou"


# --- restart policy -----------------------------------------------------------------------------


def test_restart_policy_branches_on_a_real_node(msg_env, manager):
    start_version = msg_env.config_version
    healthy = msg_env.should_restart("bannou-main")
    assert not healthy.restart and "healthy" in healthy.reason

    before = pids(msg_env)
    msg_env.restart("bannou-main", environment={STATUS: "degraded"})
    assert pids(msg_env)[("bannou-main", 0)] != before[("bannou-main", 0)]  # recreated
    assert msg_env.config_version == start_version + 1
    assert msg_env.topology.node("bannou-main").environment[STATUS] == "degraded"
    degraded = wait_decision(msg_env, "bannou-main", "degraded for")
    assert not degraded.restart and "under the 300s threshold" in degraded.reason
    monitor = manager.messaging.monitor
    monitor.degraded_threshold = 0.5  # a threshold the test can outlive
    try:
        later = wait_decision(msg_env, "bannou-main", "restart recommended")
    finally:
        monitor.degraded_threshold = 300.0
    assert later.restart and "threshold 0.5s" in later.reason

    msg_env.restart("bannou-main", environment={STATUS: "unavailable"})
    unavailable = wait_decision(msg_env, "bannou-main", "unavailable")
    assert unavailable.restart and "restart needed" in unavailable.reason

    assert msg_env.rollback(version=start_version) == start_version + 3
    assert msg_env.config_version == start_version + 3
    assert STATUS not in msg_env.topology.node("bannou-main").environment
    assert not wait_decision(msg_env, "bannou-main", "is healthy").restart


def test_plain_restart_keeps_routing(msg_env):
    before = pids(msg_env)
    version = msg_env.config_version
    msg_env.restart("bannou-main")
    assert pids(msg_env)[("bannou-main", 0)] != before[("bannou-main", 0)]
    assert msg_env.config_version == version  # same configuration
    # the fresh process missed earlier mapping events: the restart republished them
    assert post(msg_env, "/auth/login").json()["appId"] == "bannou-auth"


def test_expired_and_missing_heartbeats(msg_env):
    start_version = msg_env.config_version
    msg_env.update(
        [
            {
                "action": "add-node",
                "nodeConfig": {
                    "name": "bannou-quiet",
                    "services": ["voice"],
                    "environment": {"BANNOU_AMQP_URL": ""},
                },
            }
        ]
    )
    never = msg_env.should_restart("bannou-quiet")
    assert never.restart and "no heartbeat ever received from 'bannou-quiet'" in never.reason

    msg_env.update([{"action": "scale", "nodeName": "bannou-auth", "replicas": 0}])
    expired = wait_decision(msg_env, "bannou-auth", "expired")
    assert expired.restart and "expired" in expired.reason

    assert msg_env.rollback() == start_version + 3  # version start + 1, as a new version
    assert msg_env.topology.node("bannou-auth").replicas == 1 and "bannou-quiet" in msg_env.nodes
    assert msg_env.rollback(version=start_version) == start_version + 4
    assert msg_env.topology.node("bannou-auth").replicas == 1
    assert "bannou-quiet" not in msg_env.nodes
    assert not wait_decision(msg_env, "bannou-auth", "is healthy").restart


def test_malformed_and_stale_messages_are_ignored(msg_env, manager):
    m = manager.messaging
    malformed = m.monitor.malformed
    conn = connect_broker(m.broker_url)
    try:
        channel = conn.channel()
        for key in (HEARTBEAT_TOPIC, MAPPINGS_TOPIC):
            channel.basic_publish(EXCHANGE, key, b"{not json")
        channel.basic_publish(
            EXCHANGE, HEARTBEAT_TOPIC, json.dumps({"appId": "x", "status": "fine"}).encode()
        )
        stale = {"version": 1, "mappings": {"auth": "bannou"}, "defaultAppId": "bannou"}
        channel.basic_publish(EXCHANGE, MAPPINGS_TOPIC, json.dumps(stale).encode())
    finally:
        conn.close()
    end = time.monotonic() + 10
    while m.monitor.malformed < malformed + 2 and time.monotonic() < end:
        time.sleep(0.05)
    assert m.monitor.malformed == malformed + 2 and m.monitor.running
    m.monitor.wait_for("bannou-auth", "healthy", after=time.time())  # still storing heartbeats
    assert post(msg_env, "/auth/login").json()["appId"] == "bannou-auth"  # stale version rejected
    body = httpx.get(msg_env.url("bannou-main") + "/health", timeout=5).json()
    assert body["mappingsVersion"] == m.versions[-1]


# --- live topology changes ----------------------------------------------------------------------


def test_every_change_action_then_rollback_to_the_start(msg_env, manager, consume):
    m = manager.messaging
    events = consume(m.broker_url, MAPPINGS_TOPIC, DEPLOYMENT_TOPIC)
    start = msg_env.config_version
    start_topology = msg_env.topology
    seen_versions = [m.versions[-1]]

    def changed(action_text: str) -> dict:
        mapping = events.until(MAPPINGS_TOPIC, lambda b: b["version"] > seen_versions[-1])
        seen_versions.append(mapping["version"])
        deployment = events.until(DEPLOYMENT_TOPIC, lambda b: b["action"] == "topology-changed")
        assert any(action_text in c for c in deployment["changes"]), deployment
        assert deployment["preset"] == "msg-split" and deployment["deploymentId"] == msg_env.run_id
        return mapping

    # add-node
    assert msg_env.update(
        [{"action": "add-node", "nodeConfig": {"name": "bannou-chat", "services": ["chat"]}}]
    ) == (start + 1)
    mapping = changed("add-node")
    assert mapping["mappings"]["chat"] == "bannou-chat"
    assert post(msg_env, "/chat/send").json()["appId"] == "bannou-chat"

    # move-service: auth from bannou-auth to bannou-chat
    assert (
        msg_env.update([{"action": "move-service", "nodeName": "bannou-chat", "services": ["auth"]}])
        == start + 2
    )
    assert changed("move-service")["mappings"]["auth"] == "bannou-chat"
    assert post(msg_env, "/auth/login").json()["appId"] == "bannou-chat"
    assert msg_env.topology.node("bannou-auth").services == ("account",)
    assert post(msg_env, "/account/get").json()["appId"] == "bannou-auth"

    # scale
    msg_env.update([{"action": "scale", "nodeName": "bannou-chat", "replicas": 2}])
    changed("scale")
    running = [s for s in msg_env.status() if s.node == "bannou-chat" and s.state == "running"]
    assert len(running) == 2

    # update-env (recreates the node; the reference node reports the status it is given)
    msg_env.update(
        [{"action": "update-env", "nodeName": "bannou-chat", "environment": {STATUS: "overloaded"}}]
    )
    changed("update-env")
    overloaded = wait_decision(msg_env, "bannou-chat", "overloaded")
    assert not overloaded.restart

    # remove-node: its services fall back to the default app id
    msg_env.update([{"action": "remove-node", "nodeName": "bannou-chat"}])
    assert "chat" not in changed("remove-node")["mappings"]
    assert "bannou-chat" not in msg_env.nodes
    assert post(msg_env, "/chat/send").json()["appId"] == "bannou"
    assert msg_env.config_version == start + 5

    # rollback: the previous version's configuration, through the backend, with a new (higher)
    # mapping event, recorded as a new version (bannou's rollback keeps the audit trail)
    assert msg_env.rollback() == start + 6
    assert changed(f"rollback to configuration version {start + 4}")["mappings"]["chat"] == "bannou-chat"
    assert msg_env.topology.node("bannou-chat").replicas == 2
    assert post(msg_env, "/chat/send").json()["appId"] == "bannou-chat"
    assert msg_env.rollback(version=start) == start + 7
    assert msg_env.config_version == start + 7
    assert [v.version for v in msg_env.config_versions] == list(range(start, start + 8))
    assert msg_env.topology.node_names == start_topology.node_names
    assert dict(msg_env.topology.mappings) == dict(start_topology.mappings)
    assert seen_versions == sorted(set(seen_versions))  # strictly increasing
    assert post(msg_env, "/auth/login").json()["appId"] == "bannou-auth"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            [
                {"action": "scale", "nodeName": "bannou-auth", "replicas": 2},
                {"action": "scale", "nodeName": "nope", "replicas": 1},
            ],
            "change 2 of 2 (scale nope replicas=1): preset 'msg-split' has no node 'nope'",
        ),
        (
            [{"action": "move-service", "nodeName": "bannou-main", "services": ["warp-drive"]}],
            "unknown service(s) warp-drive",
        ),
        ([{"action": "remove-node", "nodeName": "redis"}], "node 'redis' is infrastructure"),
        ([{"action": "teleport", "nodeName": "bannou-main"}], "unknown action 'teleport'; actions: add-node"),
        (
            [{"action": "scale", "nodeName": "bannou-auth", "replicas": -1}],
            "replicas must be a whole number >= 0",
        ),
        ([{"action": "update-env", "nodeName": "bannou-auth"}], "update-env needs environment"),
        (
            [{"action": "add-node", "nodeConfig": {"name": "bannou-auth"}}],
            "node 'bannou-auth' already exists",
        ),
        ([{"action": "scale", "node": "bannou-auth"}], "unknown key(s) node"),
    ],
)
def test_a_bad_change_applies_nothing(msg_env, manager, changes, expected):
    before = (msg_env.config_version, msg_env.topology, pids(msg_env), list(manager.messaging.versions))
    with pytest.raises(ChangeError) as err:
        msg_env.update(changes)
    assert expected in err.value.message
    assert "nothing was applied" in err.value.message or "unknown key" in err.value.message
    after = (msg_env.config_version, msg_env.topology, pids(msg_env), list(manager.messaging.versions))
    assert after == before


def test_a_change_whose_node_fails_is_undone(msg_env, manager, consume):
    events = consume(manager.messaging.broker_url, DEPLOYMENT_TOPIC)
    version = msg_env.config_version
    with pytest.raises(DeployError) as err:
        msg_env.update(
            [
                {
                    "action": "update-env",
                    "nodeName": "bannou-main",
                    "environment": {"BANNOU_REFERENCE_EXIT_CODE": "3"},
                }
            ]
        )
    assert "failed and was undone" in err.value.message and "exited with code 3" in err.value.message
    assert msg_env.config_version == version
    assert "BANNOU_REFERENCE_EXIT_CODE" not in msg_env.topology.node("bannou-main").environment
    failed = events.until(DEPLOYMENT_TOPIC, lambda b: b["action"] == "failed")
    assert "exited with code 3" in failed["error"]
    assert post(msg_env, "/auth/login").json()["appId"] == "bannou-auth"


def test_rollback_without_history_is_a_clear_error(msg_env):
    assert msg_env.config_version == 1  # the tests above rolled every change back
    with pytest.raises(ChangeError, match="configuration version 1, its first: nothing to roll back"):
        msg_env.rollback()


# --- faults: unreachable broker / Redis ---------------------------------------------------------


def _manager(settings: MessagingSettings) -> EnvironmentManager:
    options = make_options(ready_timeout=30)
    return EnvironmentManager("local", options, messaging=EnvMessaging(settings, options.workdir))


def test_unreachable_broker_is_a_clear_error_and_nothing_is_left(library, msg_env):
    port = free_port()
    m = _manager(MessagingSettings(amqp_url=f"amqp://guest:secret@127.0.0.1:{port}/%2F", connect_deadline=2))
    try:
        with pytest.raises(BrokerUnreachable) as err:
            m.activate("plain", library.resolve("plain"))
        assert f"cannot reach RabbitMQ at 127.0.0.1:{port}" in err.value.message
        assert "attempt(s)" in err.value.message and "secret" not in err.value.message
        assert m.backend.status() == []
    finally:
        m.teardown(remove_workdir=True)


def test_unreachable_redis_is_a_clear_error(library, msg_env, manager):
    port = free_port()
    settings = MessagingSettings(
        amqp_url=manager.messaging.broker_url, redis_url=f"redis://127.0.0.1:{port}/0", connect_deadline=2
    )
    m = _manager(settings)
    try:
        with pytest.raises(RedisUnreachable) as err:
            m.activate("plain", library.resolve("plain"))
        assert f"cannot reach Redis at 127.0.0.1:{port}" in err.value.message
        assert m.backend.status() == []
    finally:
        m.teardown(remove_workdir=True)


def test_heartbeats_without_messaging_say_what_to_enable(library):
    m = _manager(MessagingSettings())
    try:
        env = m.activate("plain", library.resolve("plain"))
        with pytest.raises(MessagingNotConfigured, match="enable the rabbitmq and redis infrastructure"):
            env.heartbeats()
        with pytest.raises(MessagingNotConfigured, match="--bannou-amqp-url"):
            env.should_restart("bannou-main")
    finally:
        m.teardown(remove_workdir=True)


def test_session_broker_and_redis_options(library, msg_env, manager, redis_server, consume):
    """No infrastructure in the preset: the nodes use the broker and Redis the session names."""
    settings = MessagingSettings(amqp_url=manager.messaging.broker_url, redis_url=redis_server.url)
    m = _manager(settings)
    events = consume(manager.messaging.broker_url, DEPLOYMENT_TOPIC)
    try:
        env = m.activate("plain", library.resolve("plain"))
        started = events.until(
            DEPLOYMENT_TOPIC, lambda b: b["action"] == "started" and b["preset"] == "plain"
        )
        done = events.until(DEPLOYMENT_TOPIC, lambda b: b["action"] == "completed" and b["preset"] == "plain")
        assert started["deploymentId"] == done["deploymentId"] == env.run_id
        assert env.topology.node("bannou-main").environment["BANNOU_AMQP_URL"] == manager.messaging.broker_url
        m.messaging.wait_heartbeat("bannou")
        client = connect_redis(redis_server.url)
        try:
            assert client.exists("orch:hb:bannou")
        finally:
            client.close()
    finally:
        m.teardown(remove_workdir=True)


def test_plugin_options_name_the_broker_and_redis(
    bannou_pytester: BannouPytester, msg_env, manager, redis_server, monkeypatch
):
    write_presets(bannou_pytester.presets)
    monkeypatch.setenv("BANNOU_REDIS_URL", redis_server.url)  # the env twin
    bannou_pytester.pytester.makepyfile(
        test_inner="""
        import pytest

        @pytest.mark.preset("plain")
        def test_heartbeats(bannou_env):
            node = bannou_env.topology.node("bannou-main")
            assert node.environment["BANNOU_HEARTBEAT_INTERVAL"] == "0.2"
            bannou_env._manager.messaging.wait_heartbeat("bannou")
            assert bannou_env.heartbeats()["bannou"].status == "healthy"
            assert not bannou_env.should_restart("bannou-main").restart
        """
    )
    result = bannou_pytester.run_subprocess(
        f"--bannou-amqp-url={manager.messaging.broker_url}", "--bannou-heartbeat-interval=0.2", timeout=120
    )
    result.assert_outcomes(passed=1)
    client = connect_redis(redis_server.url)
    try:
        assert client.sismember("orch:hb:_index", "bannou")  # stored in the Redis the option named
    finally:
        client.close()


def test_bad_heartbeat_interval_option_is_a_usage_error(pytester: pytest.Pytester):
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest_subprocess("--bannou-heartbeat-interval=soon", timeout=60)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--bannou-heartbeat-interval*'soon' is not a number of seconds*"])


# --- restore: the next test gets the preset back (issue 14) ---------------------------------------


def test_the_next_activation_restores_what_a_test_changed(msg_env, manager, library, consume):
    m = manager.messaging
    events = consume(m.broker_url, MAPPINGS_TOPIC, DEPLOYMENT_TOPIC)
    preset_topology = msg_env.topology
    before = pids(msg_env)
    msg_env.update([{"action": "move-service", "nodeName": "bannou-main", "services": ["auth"]}])
    msg_env.update([{"action": "scale", "nodeName": "bannou-main", "replicas": 2}])
    assert msg_env.config_version == 3
    assert post(msg_env, "/auth/login").json()["appId"] == "bannou"
    last = m.versions[-1]

    again = manager.activate("msg-split", library.resolve("msg-split"))  # the next test

    assert again is msg_env and msg_env.config_version == 1
    assert msg_env.topology == preset_topology
    mapping = events.until(MAPPINGS_TOPIC, lambda b: b["version"] > last)
    assert mapping["mappings"]["auth"] == "bannou-auth"
    deployment = events.until(
        DEPLOYMENT_TOPIC, lambda b: any("restore msg-split" in c for c in b.get("changes") or ())
    )
    assert deployment["action"] == "topology-changed"
    after = pids(msg_env)
    assert len([k for k in after if k[0] == "bannou-main"]) == 1
    for node in ("redis", "rabbitmq"):  # only the changed nodes were touched
        assert after[(node, 0)] == before[(node, 0)]
    assert post(msg_env, "/auth/login").json()["appId"] == "bannou-auth"
    assert manager.records["msg-split"].restores == 1
    with pytest.raises(ChangeError, match="nothing to roll back"):
        msg_env.rollback()
    assert manager.activate("msg-split", library.resolve("msg-split")) is msg_env  # unchanged: nothing
    assert pids(msg_env) == after and manager.records["msg-split"].restores == 1


# --- transitions (last: the shared environment moves on) ----------------------------------------


def test_transition_publishes_new_mappings_and_keeps_the_infrastructure(msg_env, manager, library, consume):
    m = manager.messaging
    events = consume(m.broker_url, MAPPINGS_TOPIC, DEPLOYMENT_TOPIC)
    infra_before = {k: v for k, v in pids(msg_env).items() if k[0] in ("redis", "rabbitmq")}
    last = m.versions[-1]
    mono = manager.activate("msg-mono", library.resolve("msg-mono"))
    mapping = events.until(MAPPINGS_TOPIC, lambda b: b["version"] > last)
    assert mapping["mappings"] == {}
    deployment = events.until(DEPLOYMENT_TOPIC, lambda b: b["action"] == "topology-changed")
    assert deployment["preset"] == "msg-mono"
    assert {k: v for k, v in pids(mono).items() if k[0] in ("redis", "rabbitmq")} == infra_before
    assert post(mono, "/auth/login").json()["appId"] == "bannou"
    m.wait_heartbeat("bannou")
    back = manager.activate("msg-split", library.resolve("msg-split"))
    assert events.until(MAPPINGS_TOPIC, lambda b: b["version"] > mapping["version"])["mappings"]["auth"] == (
        "bannou-auth"
    )
    assert post(back, "/auth/login").json()["appId"] == "bannou-auth"
