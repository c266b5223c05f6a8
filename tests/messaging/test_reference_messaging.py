"""The reference node's messaging: heartbeat publisher, mapping table/subscriber, forwarding."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from pytest_bannou.errors import BannouError
from pytest_bannou.messaging.broker import EventPublisher
from pytest_bannou.messaging.contract import HEARTBEAT_TOPIC, BrokerUnreachable, mappings_event
from pytest_bannou.messaging.heartbeats import HeartbeatMonitor
from pytest_bannou.reference.messaging import (
    FORWARDED_HEADER,
    Forwarder,
    HeartbeatPublisher,
    MappingSubscriber,
    MappingTable,
    NodeMessaging,
    forward,
    parse_mesh_endpoints,
)
from tests.support.messaging_servers import free_port

# -- heartbeat publisher --------------------------------------------------------------------------


def test_publisher_beats_on_start_every_interval_on_change_and_on_stop(rabbitmq_server, consumer, app_id):
    c = consumer(HEARTBEAT_TOPIC)
    pub = HeartbeatPublisher(app_id, ["auth", "account"], rabbitmq_server.url, interval=0.2).start()
    try:
        key, first = c.get()
        assert key == HEARTBEAT_TOPIC
        assert first["appId"] == app_id and first["status"] == "healthy"
        assert [s["serviceName"] for s in first["services"]] == ["auth", "account"]
        assert first["eventName"] == "service.heartbeat" and first["serviceId"] == pub.instance_id
        periodic = [c.get()[1] for _ in range(3)]  # more beats arrive without any prompting
        assert all(m["status"] == "healthy" for m in periodic)
        assert len({m["eventId"] for m in [first, *periodic]}) == 4
        pub.set_status("degraded", issues=["slow"], capacity={"cpuUsage": 0.9})
        while (m := c.get()[1])["status"] != "degraded":
            pass
        assert m["issues"] == ["slow"] and m["capacity"] == {"cpuUsage": 0.9}
        assert {s["status"] for s in m["services"]} == {"degraded"}
    finally:
        pub.stop()
    while (last := c.get()[1])["status"] == "degraded":
        pass  # beats published before stop() are still arriving
    assert last["status"] == "shutting_down"
    assert {s["status"] for s in last["services"]} == {"unavailable"}


def test_publisher_feeds_the_monitor(rabbitmq_server, redis_client, app_id):
    with HeartbeatMonitor(rabbitmq_server.url, redis_client, ttl=30) as monitor:
        pub = HeartbeatPublisher(app_id, ["auth"], rabbitmq_server.url, interval=5).start()
        assert monitor.wait_for(app_id, "healthy", timeout=10).services == ("auth",)
        pub.set_status("unavailable", issues=["db down"])
        monitor.wait_for(app_id, "unavailable", timeout=10)
        assert monitor.should_restart(app_id).restart
        pub.stop()
        monitor.wait_for(app_id, "shutting_down", timeout=10)


def test_publisher_and_monitor_survive_the_broker_dropping_connections(
    rabbitmq_server, redis_client, app_id, caplog
):
    with HeartbeatMonitor(rabbitmq_server.url, redis_client, ttl=30) as monitor:
        pub = HeartbeatPublisher(app_id, ["auth"], rabbitmq_server.url, interval=0.2).start()
        try:
            monitor.wait_for(app_id, "healthy", timeout=10)
            rabbitmq_server.close_connections("connection-drop test")
            pub.set_status("degraded")
            monitor.wait_for(app_id, "degraded", timeout=30)  # both sides reconnected
            assert monitor.running
            assert "heartbeat monitor lost RabbitMQ" in caplog.text
        finally:
            pub.stop()


def test_mapping_subscriber_resubscribes_after_the_broker_drops_it(rabbitmq_server, caplog):
    table = MappingTable()
    with MappingSubscriber(table, rabbitmq_server.url):
        rabbitmq_server.close_connections("connection-drop test")
        deadline = time.monotonic() + 30
        with EventPublisher(rabbitmq_server.url) as pub:
            # like bannou's orchestrator, publish until the subscriber is back (it republishes
            # every 30 s anyway)
            while table.route("auth") != "bannou-auth":
                assert time.monotonic() < deadline, "subscriber never came back"
                pub.publish_mappings(mappings={"auth": "bannou-auth"})
                time.sleep(0.2)
    assert "mapping subscriber lost RabbitMQ" in caplog.text


def test_publisher_rejects_bad_status_and_unreachable_broker(app_id):
    with pytest.raises(ValueError, match="sleepy"):
        HeartbeatPublisher(app_id, [], "127.0.0.1:1", status="sleepy")
    pub = HeartbeatPublisher(app_id, [], f"127.0.0.1:{free_port()}", deadline=0.5)
    with pytest.raises(BrokerUnreachable, match="cannot reach RabbitMQ"):
        pub.start()


# -- mapping table ----------------------------------------------------------------------------------


def test_mapping_table_rejects_stale_versions_and_routes():
    table = MappingTable()
    assert table.route("auth") is None  # nothing known yet
    assert table.apply(mappings_event(None, 5, None, mappings={"auth": "bannou-auth"}))
    assert table.route("auth") == "bannou-auth"
    assert table.route("account") == "bannou"  # unmapped -> defaultAppId
    assert not table.apply(mappings_event(None, 5, None, mappings={"auth": "x"}))
    assert not table.apply(mappings_event(None, 4, None, mappings={"auth": "x"}))
    assert table.route("auth") == "bannou-auth" and table.version == 5 and table.rejected == 2
    assert table.apply(mappings_event(None, 6, None, mappings={}, default_app_id="other"))
    assert table.route("auth") == "other"
    with pytest.raises(ValueError, match="version"):
        table.apply(b'{"mappings": {}}')


def test_mapping_subscriber_applies_published_events_and_survives_garbage(rabbitmq_server):
    table = MappingTable()
    with MappingSubscriber(table, rabbitmq_server.url) as sub, EventPublisher(rabbitmq_server.url) as pub:
        pub.publish("bannou.full-service-mappings", {"not": "a mapping event"})
        event = pub.publish_mappings(mappings={"auth": "bannou-auth"})
        table.wait_for_version(event["version"])
        assert table.route("auth") == "bannou-auth"
        assert sub.malformed == 1
        # an event from an older publisher (lower version) is ignored
        pub.publish(
            "bannou.full-service-mappings", mappings_event(None, 1, "old", mappings={"auth": "stale"})
        )
        newer = pub.publish_mappings(mappings={"auth": "bannou-auth-2"})
        table.wait_for_version(newer["version"])
        assert table.route("auth") == "bannou-auth-2" and table.rejected == 1


# -- forwarding through real HTTP servers -------------------------------------------------------------


def _serve(handler_cls: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class EchoHandler(BaseHTTPRequestHandler):
    app_id = "bannou-auth"

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        payload = {
            "appId": self.app_id,
            "method": self.command,
            "path": self.path,
            "body": body,
            "forwardedBy": self.headers.get(FORWARDED_HEADER),
            "custom": self.headers.get("x-custom"),
        }
        data = json.dumps(payload).encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("content-type", "application/json")
        self.send_header("x-answered-by", self.app_id)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def make_main_handler(forwarder: Forwarder) -> type[BaseHTTPRequestHandler]:
    class MainHandler(EchoHandler):
        app_id = "bannou"

        def _answer(self) -> None:
            service = self.path.strip("/").split("/")[0]
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else None
            result = forwarder.forward_service(service, self.command, self.path, body, dict(self.headers))
            if result is None:
                self.rfile = io.BytesIO(body or b"")
                return EchoHandler._answer(self)
            status, headers, content = result
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = _answer

    return MainHandler


@contextmanager
def split_nodes(table: MappingTable, endpoints_extra: str = "") -> Iterator[tuple[str, str]]:
    auth, auth_url = _serve(EchoHandler)
    env = {"BANNOU_MESH_ENDPOINTS": f"bannou-auth={auth_url}{endpoints_extra}"}
    forwarder = Forwarder.from_env("bannou", ["account"], table, env)
    main, main_url = _serve(make_main_handler(forwarder))
    try:
        yield main_url, auth_url
    finally:
        for s in (main, auth):
            s.shutdown()
            s.server_close()


def test_main_node_forwards_a_service_it_does_not_host(rabbitmq_server):
    table = MappingTable()
    with (
        MappingSubscriber(table, rabbitmq_server.url),
        EventPublisher(rabbitmq_server.url) as pub,
        split_nodes(table) as (main_url, _auth_url),
    ):
        # before any mapping: main answers itself
        assert httpx.get(f"{main_url}/auth/login").json()["appId"] == "bannou"
        table.wait_for_version(pub.publish_mappings(mappings={"auth": "bannou-auth"})["version"])
        r = httpx.post(f"{main_url}/auth/login?x=1", content=b'{"user":"u"}', headers={"x-custom": "kept"})
        assert r.status_code == 201
        assert r.headers["x-answered-by"] == "bannou-auth"
        got = r.json()
        assert got == {
            "appId": "bannou-auth",
            "method": "POST",
            "path": "/auth/login?x=1",
            "body": '{"user":"u"}',
            "forwardedBy": "bannou",
            "custom": "kept",
        }
        # a hosted service stays local; moving auth back to the default node stops forwarding
        assert httpx.get(f"{main_url}/account/me").json()["appId"] == "bannou"
        table.wait_for_version(pub.publish_mappings(mappings={"auth": "bannou"})["version"])
        assert httpx.get(f"{main_url}/auth/login").json()["appId"] == "bannou"


def test_forward_to_an_app_without_endpoint_or_a_dead_node_is_a_clear_502():
    table = MappingTable()
    table.apply(mappings_event(None, 1, None, mappings={"auth": "bannou-auth", "chat": "bannou-chat"}))
    dead = f"http://127.0.0.1:{free_port()}"
    with split_nodes(table, endpoints_extra=f",bannou-chat={dead}") as (main_url, _):
        r = httpx.get(f"{main_url}/quest/x")  # unmapped -> default app id "bannou" -> local
        assert r.json()["appId"] == "bannou"
        table.apply(mappings_event(None, 2, None, mappings={"quest": "bannou-quest", "chat": "bannou-chat"}))
        r = httpx.get(f"{main_url}/quest/x")
        assert r.status_code == 502 and "BANNOU_MESH_ENDPOINTS has no URL" in r.json()["error"]
        r = httpx.get(f"{main_url}/chat/x")
        assert r.status_code == 502 and dead in r.json()["error"]


def test_forward_function_and_loop_guard():
    auth, auth_url = _serve(EchoHandler)
    try:
        status, headers, body = forward("GET", "/auth/a?b=c", None, {"Host": "x", "x-custom": "y"}, auth_url)
        assert status == 200 and headers["x-answered-by"] == "bannou-auth"
        assert json.loads(body)["path"] == "/auth/a?b=c" and json.loads(body)["custom"] == "y"
    finally:
        auth.shutdown()
        auth.server_close()
    table = MappingTable()
    table.apply(mappings_event(None, 1, None, mappings={"auth": "bannou-auth"}))
    fwd = Forwarder("bannou", [], table, {"bannou-auth": auth_url})
    assert fwd.forward_service("auth", "GET", "/auth", None, {FORWARDED_HEADER: "other"}) is None


def test_parse_mesh_endpoints():
    assert parse_mesh_endpoints(None) == {}
    assert parse_mesh_endpoints(" a=http://127.0.0.1:1/ , b=https://h:2 ,") == {
        "a": "http://127.0.0.1:1",
        "b": "https://h:2",
    }
    for bad in ("a", "=http://x:1", "a=ftp://x", "a=127.0.0.1:80"):
        with pytest.raises(BannouError, match="BANNOU_MESH_ENDPOINTS: bad entry"):
            parse_mesh_endpoints(bad)


def test_node_messaging_from_env(rabbitmq_server, redis_client, app_id):
    assert NodeMessaging.from_env({}, app_id, ["auth"]) is None  # messaging not configured
    with pytest.raises(BannouError, match="BANNOU_HEARTBEAT_INTERVAL='-1'"):
        NodeMessaging.from_env({"BANNOU_AMQP_URL": "x", "BANNOU_HEARTBEAT_INTERVAL": "-1"}, app_id, [])
    env = {
        "BANNOU_AMQP_URL": rabbitmq_server.url,
        "BANNOU_HEARTBEAT_INTERVAL": "0.2",
        "BANNOU_MESH_ENDPOINTS": "bannou-auth=http://127.0.0.1:9",
    }
    node = NodeMessaging.from_env(env, app_id, ["account"])
    with (
        HeartbeatMonitor(rabbitmq_server.url, redis_client, ttl=30) as monitor,
        EventPublisher(rabbitmq_server.url) as pub,
    ):
        node.start()
        try:
            assert monitor.wait_for(app_id, "healthy", timeout=10).services == ("account",)
            node.table.wait_for_version(pub.publish_mappings(mappings={"auth": "bannou-auth"})["version"])
            assert node.forwarder.target("auth") == ("bannou-auth", "http://127.0.0.1:9")
            assert node.forwarder.target("account") is None
        finally:
            node.stop()
        monitor.wait_for(app_id, "shutting_down", timeout=10)
