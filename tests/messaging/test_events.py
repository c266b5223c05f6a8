"""Event shapes and publication on a real RabbitMQ (pytest_bannou.messaging.contract)."""

from __future__ import annotations

import time
import uuid

import pytest

from pytest_bannou.errors import BannouError
from pytest_bannou.messaging.broker import EventPublisher, connect_broker
from pytest_bannou.messaging.contract import (
    CONFIGURATION_TOPIC,
    DEPLOYMENT_TOPIC,
    MAPPINGS_TOPIC,
    SERVICE_LIFECYCLE_TOPIC,
    BrokerUnreachable,
    broker_url,
    configuration_changed_event,
    deployment_event,
    heartbeat_event,
    mappings_event,
    parse_heartbeat,
    parse_iso,
    parse_mappings,
    redact,
    service_restart_event,
)
from pytest_bannou.topology.model import Node, Topology
from tests.support.bannou_schemas import check_event, topic_of
from tests.support.messaging_servers import free_port


def split_auth() -> Topology:
    return Topology(
        preset="split-auth",
        nodes=(
            Node("main", "bannou", services=("account",)),
            Node("auth", "bannou-auth", services=("auth",)),
        ),
        mappings={"auth": "bannou-auth", "account": "bannou"},
    )


def test_mappings_event_has_bannou_shape_from_topology():
    event = mappings_event(split_auth(), 7, "src-1")
    assert event["eventName"] == "orchestrator.full_service_mappings"
    assert uuid.UUID(event["eventId"])
    assert abs(parse_iso(event["timestamp"]) - time.time()) < 60
    assert event["mappings"] == {"account": "bannou", "auth": "bannou-auth"}
    assert event["defaultAppId"] == "bannou"
    assert event["version"] == 7
    assert event["sourceInstanceId"] == "src-1"
    assert event["totalServices"] == 2
    assert parse_mappings(event) == event


def test_mappings_event_rejects_bad_version():
    with pytest.raises(ValueError, match="version"):
        mappings_event(split_auth(), -1, None)


def test_deployment_event_shape_and_backend_enum():
    event = deployment_event("topology-changed", "run-1", preset="split-auth", backend="local", changes=["x"])
    assert set(event) == {
        "eventId",
        "timestamp",
        "action",
        "deploymentId",
        "preset",
        "backend",
        "changes",
        "error",
    }
    assert event["backend"] is None  # "local" is not in bannou's BackendType enum
    assert deployment_event("failed", "d", backend="compose", error="boom")["backend"] == "compose"
    with pytest.raises(ValueError, match="started, completed, failed, topology-changed"):
        deployment_event("exploded", "run-1")


def test_heartbeat_event_round_trips_and_bad_ones_say_why():
    event = heartbeat_event("auth-node", "degraded", ["auth"], issues=["slow db"], capacity={"cpuUsage": 0.5})
    assert parse_heartbeat(event)["services"][0]["serviceName"] == "auth"
    assert event["eventName"] == "service.heartbeat"
    cases = [
        (b"not json", "not JSON"),
        (b"[1]", "JSON object"),
        (b'{"status": "healthy", "services": []}', "appId"),
        (b'{"appId": "a", "status": "sleepy", "services": []}', "status"),
        (b'{"appId": "a", "status": "healthy", "services": [{}]}', "serviceName"),
        (b'{"appId": "_index", "status": "healthy", "services": []}', "reserved"),
        (b'{"appId": "a", "status": "healthy", "services": [], "issues": [1]}', "issues"),
    ]
    for body, why in cases:
        with pytest.raises(ValueError, match=why):
            parse_heartbeat(body)


def test_broker_url_forms_and_redaction():
    assert broker_url("127.0.0.1:5999") == "amqp://guest:guest@127.0.0.1:5999/%2F"
    assert broker_url(host="h", port=1) == "amqp://guest:guest@h:1/%2F"
    assert redact("amqp://u:secret@h:1/%2F") == "amqp://u:***@h:1/%2F"


def test_publisher_sends_mappings_with_routing_key_and_increasing_versions(rabbitmq_server, consumer):
    c = consumer(MAPPINGS_TOPIC)
    with EventPublisher(rabbitmq_server.url) as pub:
        sent = [pub.publish_mappings(split_auth()) for _ in range(3)]
        sent.append(pub.publish_mappings(mappings={"auth": "bannou"}))
    received = [c.get() for _ in sent]
    assert [k for k, _ in received] == [MAPPINGS_TOPIC] * 4
    assert [m for _, m in received] == sent
    versions = [m["version"] for _, m in received]
    assert versions == sorted(set(versions)) and len(set(versions)) == 4
    assert received[0][1]["mappings"] == {"account": "bannou", "auth": "bannou-auth"}
    assert received[3][1]["mappings"] == {"auth": "bannou"}
    assert {m["sourceInstanceId"] for _, m in received} == {pub.source_instance_id}


def test_a_new_publisher_continues_above_the_previous_versions(rabbitmq_server):
    with EventPublisher(rabbitmq_server.url) as first:
        v1 = first.publish_mappings(split_auth())["version"]
    with EventPublisher(rabbitmq_server.url) as second:
        v2 = second.publish_mappings(split_auth())["version"]
    assert v2 > v1
    fixed = EventPublisher(rabbitmq_server.url, last_version=10, clock=lambda: 0.0)
    try:
        assert [fixed.publish_mappings(split_auth())["version"] for _ in range(2)] == [11, 12]
    finally:
        fixed.close()


def test_deployment_events_go_to_bannou_deployment_events(rabbitmq_server, consumer):
    c = consumer(DEPLOYMENT_TOPIC)
    with EventPublisher(rabbitmq_server.url) as pub:
        for action in ("started", "completed", "failed", "topology-changed"):
            pub.publish_deployment(action, "run-42", preset="split-auth", backend="compose")
    got = [c.get() for _ in range(4)]
    assert [k for k, _ in got] == [DEPLOYMENT_TOPIC] * 4
    assert [m["action"] for _, m in got] == ["started", "completed", "failed", "topology-changed"]
    assert all(m["deploymentId"] == "run-42" and m["backend"] == "compose" for _, m in got)


def test_publisher_reconnects_after_the_connection_drops(rabbitmq_server, consumer):
    c = consumer(MAPPINGS_TOPIC)
    with EventPublisher(rabbitmq_server.url) as pub:
        pub._conn.close()  # the broker side went away
        event = pub.publish_mappings(split_auth())
    assert c.get()[1]["version"] == event["version"]


def test_unreachable_broker_fails_clearly_within_the_deadline():
    port = free_port()  # nobody listens there
    t0 = time.monotonic()
    with pytest.raises(BrokerUnreachable) as info:
        connect_broker(f"amqp://guest:secret@127.0.0.1:{port}/%2F", deadline=1.5)
    elapsed = time.monotonic() - t0
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert "attempt" in message and "deadline 1.5s" in message
    assert "secret" not in message
    assert isinstance(info.value, BannouError)
    assert elapsed < 10  # bounded: the deadline plus one connect timeout, never a hang
    with pytest.raises(BrokerUnreachable):
        EventPublisher(host="127.0.0.1", port=port, deadline=0.5)


def test_missing_client_library_names_the_extra():
    from pytest_bannou.messaging.broker import require
    from pytest_bannou.messaging.contract import MessagingError

    with pytest.raises(MessagingError, match=r"pytest-bannou\[messaging\]"):
        require("no_such_client_library_xyz")


def test_orchestrator_events_match_bannou_schemas_and_topics():
    """ServiceRestartEvent and ConfigurationChangedEvent as bannou's orchestrator-events.yaml
    defines them (no eventName, no extra field), on the topics it names."""
    events = "orchestrator-events.yaml"
    assert topic_of(events, "ServiceRestartEvent") == SERVICE_LIFECYCLE_TOPIC
    assert topic_of(events, "ConfigurationChangedEvent") == CONFIGURATION_TOPIC
    restart = service_restart_event("bannou-auth", "restart bannou-auth", new_environment={"X": 1})
    check_event(events, "ServiceRestartEvent", restart)
    assert restart["newEnvironment"] == {"X": "1"} and restart["forced"] is False
    check_event(events, "ServiceRestartEvent", service_restart_event("bannou", "r"))
    changed = configuration_changed_event(4, ["nodes.a.replicas"])
    check_event(events, "ConfigurationChangedEvent", changed)
    assert set(changed) == {"eventId", "timestamp", "configVersion", "changedKeys"}
    for bad in (0, -1, True, "2"):
        with pytest.raises(ValueError, match="configVersion must be a positive integer"):
            configuration_changed_event(bad, [])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="service_name"):
        service_restart_event("", "r")


def test_orchestrator_events_reach_a_real_broker(rabbitmq_server, consumer):
    events = consumer(SERVICE_LIFECYCLE_TOPIC, CONFIGURATION_TOPIC)
    with EventPublisher(rabbitmq_server.url) as publisher:
        sent = publisher.publish_service_restart("bannou", "why", forced=True)
        assert events.get(timeout=30) == (SERVICE_LIFECYCLE_TOPIC, sent)
        sent = publisher.publish_configuration_changed(7, ["mappings.auth"])
        assert events.get(timeout=30) == (CONFIGURATION_TOPIC, sent)
