"""Heartbeat records, the monitor and the restart policy against real Redis and RabbitMQ."""

from __future__ import annotations

import json
import threading
import time

import pika
import pytest

from pytest_bannou.messaging.contract import (
    EXCHANGE,
    HEARTBEAT_TOPIC,
    BrokerUnreachable,
    MessagingError,
    heartbeat_event,
)
from pytest_bannou.messaging.heartbeats import (
    HeartbeatMonitor,
    HeartbeatProbe,
    HeartbeatStore,
    RedisUnreachable,
    connect_redis,
    heartbeat_healthy,
)
from pytest_bannou.topology.model import Node
from tests.support.messaging_servers import free_port


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def publish_raw(url: str, bodies: list[bytes]) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
    for body in bodies:
        ch.basic_publish(EXCHANGE, HEARTBEAT_TOPIC, body)
    conn.close()


def hb(app_id: str, status: str = "healthy", services=("auth",), **kw) -> dict:
    return heartbeat_event(app_id, status, list(services), **kw)


# -- store --------------------------------------------------------------------------------------


def test_store_writes_key_index_and_real_ttl_expiry(redis_client, app_id):
    store = HeartbeatStore(redis_client, ttl=2.0)
    store.write([hb(app_id)])
    assert redis_client.exists(f"orch:hb:{app_id}")
    assert 0 < redis_client.pttl(f"orch:hb:{app_id}") <= 2000
    assert redis_client.smembers("orch:hb:_index") == {app_id.encode()}
    assert store.latest(app_id).status == "healthy"
    assert heartbeat_healthy(redis_client, app_id)
    deadline = time.monotonic() + 10
    while redis_client.exists(f"orch:hb:{app_id}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.latest(app_id) is None  # Redis expired it
    assert not heartbeat_healthy(redis_client, app_id)
    assert store.known() == {app_id}  # the index remembers, so expiry is distinguishable
    assert store.all() == {}
    decision = store.should_restart(app_id)
    assert decision.restart and "expired" in decision.reason


def test_store_default_ttl_is_90_seconds(redis_client, app_id):
    HeartbeatStore(redis_client).write([hb(app_id)])
    assert 80_000 < redis_client.pttl(f"orch:hb:{app_id}") <= 90_000  # 90 s, read a moment later


def test_listing_uses_the_index_never_keys_or_scan(redis_server, redis_client):
    store = HeartbeatStore(redis_client)
    store.write([hb(f"n{i}") for i in range(5)])
    commands: list[str] = []
    monitor_conn = connect_redis(redis_server.url)
    mon = monitor_conn.monitor()
    started = threading.Event()

    def record() -> None:
        with mon as m:
            started.set()
            for cmd in m.listen():
                commands.append(cmd["command"].upper())
                if "STOP-MARKER" in cmd["command"].upper():
                    return

    t = threading.Thread(target=record, daemon=True)
    t.start()
    started.wait(5)
    time.sleep(0.2)
    records = store.all()
    store.should_restart("n1")
    store.write([hb("n9")])
    redis_client.get("stop-marker")
    t.join(10)
    monitor_conn.close()
    assert sorted(records) == [f"n{i}" for i in range(5)]
    assert any(c.startswith("SMEMBERS") for c in commands)
    assert not [c for c in commands if c.startswith(("KEYS", "SCAN"))]


def test_batch_keeps_last_heartbeat_per_app(redis_client):
    store = HeartbeatStore(redis_client)
    records = store.write([hb("a", "healthy"), hb("b"), hb("a", "unavailable")])
    assert {r.app_id: r.status for r in records} == {"a": "unavailable", "b": "healthy"}
    assert store.latest("a").status == "unavailable"


# -- restart policy, every branch, with a controllable clock --------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(redis_client, clock) -> HeartbeatStore:
    return HeartbeatStore(redis_client, ttl=90, clock=clock)


def test_restart_healthy_no(store, app_id):
    store.write([hb(app_id, "healthy")])
    d = store.should_restart(app_id)
    assert (d.restart, d.status) == (False, "healthy")


def test_restart_never_seen_needed(store, app_id):
    d = store.should_restart(app_id)
    assert d.restart and "no heartbeat ever received" in d.reason and d.status is None


def test_restart_unavailable_needed(store, app_id):
    store.write([hb(app_id, "unavailable", issues=["db down"])])
    d = store.should_restart(app_id)
    assert d.restart and "unavailable" in d.reason and "db down" in d.reason


def beat(
    store: HeartbeatStore, clock: Clock, app_id: str, status: str, seconds: int, every: int = 20
) -> None:
    """Heartbeats of ``status`` every ``every`` seconds for ``seconds`` seconds of the fake clock."""
    for _ in range(seconds // every):
        clock.t += every
        store.write([hb(app_id, status)])


def test_restart_degraded_under_threshold_no_then_recommended(store, clock, app_id):
    store.write([hb(app_id, "degraded")])
    beat(store, clock, app_id, "degraded", 260)
    d = store.should_restart(app_id, degraded_threshold=300)
    assert (d.restart, d.degraded_for) == (False, 260) and "under" in d.reason
    beat(store, clock, app_id, "degraded", 60)
    d = store.should_restart(app_id, degraded_threshold=300)
    assert d.restart and d.degraded_for == 320 and "restart recommended" in d.reason


def test_restart_degraded_clock_resets_after_a_healthy_heartbeat(store, clock, app_id):
    store.write([hb(app_id, "degraded")])
    beat(store, clock, app_id, "degraded", 400)
    store.write([hb(app_id, "healthy")])
    store.write([hb(app_id, "degraded")])
    clock.t += 10
    d = store.should_restart(app_id, degraded_threshold=300)
    assert not d.restart and d.degraded_for == 10
    # healthy and degraded again inside one batch also restarts the run
    beat(store, clock, app_id, "degraded", 400)
    assert store.should_restart(app_id, degraded_threshold=300).restart
    store.write([hb(app_id, "degraded"), hb(app_id, "healthy"), hb(app_id, "degraded")])
    assert store.should_restart(app_id, degraded_threshold=300).degraded_for == 0


def test_restart_threshold_is_configurable(store, clock, app_id):
    store.write([hb(app_id, "degraded")])
    clock.t += 30
    assert not store.should_restart(app_id).restart  # default 5 minutes
    assert store.should_restart(app_id, degraded_threshold=20).restart


def test_restart_stale_record_needed_even_before_redis_expires_it(store, clock, app_id):
    store.write([hb(app_id, "healthy")])
    d = store.should_restart(app_id, now=clock.t + 91)
    assert d.restart and "91s old" in d.reason


def test_restart_overloaded_and_shutting_down_no(store, app_id):
    store.write([hb(app_id, "overloaded")])
    assert not store.should_restart(app_id).restart
    store.write([hb(app_id, "shutting_down")])
    assert not store.should_restart(app_id).restart


# -- monitor end to end ---------------------------------------------------------------------------


@pytest.fixture
def monitor(rabbitmq_server, redis_client):
    m = HeartbeatMonitor(rabbitmq_server.url, redis_client, ttl=30).start()
    yield m
    m.stop()


def test_monitor_stores_published_heartbeats(rabbitmq_server, redis_client, monitor, app_id):
    publish_raw(rabbitmq_server.url, [json.dumps(hb(app_id, "healthy", ("auth", "account"))).encode()])
    rec = monitor.wait_for(app_id, "healthy", timeout=10)
    assert rec.services == ("auth", "account")
    assert monitor.latest(app_id).status == "healthy"
    assert app_id in monitor.all()
    assert heartbeat_healthy(redis_client, app_id)
    assert 0 < redis_client.pttl(f"orch:hb:{app_id}") <= 30_000
    assert not monitor.should_restart(app_id).restart


def test_monitor_ignores_malformed_messages_and_keeps_running(rabbitmq_server, monitor, app_id, caplog):
    bad = [b"garbage", b"{}", json.dumps({"appId": app_id, "status": "zzz", "services": []}).encode()]
    publish_raw(rabbitmq_server.url, [*bad, json.dumps(hb(app_id, "degraded")).encode()])
    monitor.wait_for(app_id, "degraded", timeout=10)
    assert monitor.malformed == 3
    assert monitor.running
    assert "ignoring malformed heartbeat" in caplog.text
    publish_raw(rabbitmq_server.url, [json.dumps(hb(app_id, "healthy")).encode()])
    assert monitor.wait_for(app_id, "healthy", timeout=10).status == "healthy"


def test_monitor_wait_for_times_out_with_a_clear_message(monitor, app_id):
    with pytest.raises(MessagingError, match=f"no healthy heartbeat from '{app_id}'"):
        monitor.wait_for(app_id, timeout=0.3)


def test_monitor_unreachable_broker_fails_start(redis_client):
    m = HeartbeatMonitor(f"127.0.0.1:{free_port()}", redis_client, deadline=0.5)
    with pytest.raises(BrokerUnreachable, match=r"cannot reach RabbitMQ at 127\.0\.0\.1"):
        m.start()
    assert not m.running


def test_unreachable_redis_fails_clearly_within_the_deadline():
    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(RedisUnreachable) as info:
        connect_redis(f"redis://127.0.0.1:{port}/0", deadline=1.0)
    assert f"127.0.0.1:{port}" in str(info.value) and "attempt" in str(info.value)
    assert time.monotonic() - t0 < 10


def test_heartbeat_probe_for_health_layer(redis_client, app_id):
    node = Node("auth", app_id, services=("auth",))
    probe = HeartbeatProbe(redis_client)
    assert not probe.check(None, node, 0, 1.0).ok
    HeartbeatStore(redis_client).write([hb(app_id, "healthy")])
    assert probe.check(None, node, 0, 1.0).ok
    HeartbeatStore(redis_client).write([hb(app_id, "degraded")])
    assert not probe.check(None, node, 0, 1.0).ok
