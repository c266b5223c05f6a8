"""The reference edge-tester's WebSocket case: a real round trip through ``CONNECT_ENDPOINT``
against the reference node's ``/connect``, and each way it fails (refused upgrade, wrong echo,
silence past the deadline), reported in edge-tester format."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from websockets.sync.server import ServerConnection, serve

from pytest_bannou.reference.tester import WEBSOCKET_CASE, connect_endpoint
from pytest_bannou.reference.ws_check import WebSocketFailure, round_trip
from pytest_bannou.testers import runner
from pytest_bannou.topology import model as topology

EDGE = ("python", "-m", "pytest_bannou.reference.tester", "--format", "edge-tester")


def edge_spec() -> topology.TesterSpec:
    return topology.TesterSpec(name="edge-tester", command=EDGE, format="edge-tester", timeout=120)


def test_edge_tester_round_trip_through_connect_endpoint(start_node, tmp_path: Path):
    node = start_node(["auth", "connect"], app_id="bannou-edge")
    env = runner.tester_environment(node.url)
    assert env["CONNECT_ENDPOINT"] == f"127.0.0.1:{node.port}/connect"  # bannou's form, no scheme
    run = runner.run_tester(edge_spec(), environment=env, workdir=tmp_path)
    assert run.exit_code == 0 and run.ok, run.raw_tail
    case = run.case(WEBSOCKET_CASE)
    assert case.outcome == "passed"
    for line in ("-> 101 Switching Protocols", "welcome from app id bannou-edge", "echoed", "pong"):
        assert line in case.output
    assert "closed cleanly (1000)" in case.output
    assert "GET /connect 101" in node.log.read_text()


def test_edge_tester_fails_the_case_when_the_node_has_no_connect(start_node, tmp_path: Path):
    node = start_node(["auth"])
    run = runner.run_tester(edge_spec(), environment=runner.tester_environment(node.url), workdir=tmp_path)
    assert run.exit_code == 1 and not run.ok
    case = run.case(WEBSOCKET_CASE)
    assert case.outcome == "failed"
    assert "upgrade refused: HTTP 404" in case.output
    assert "service 'connect' is not enabled" in case.output
    assert run.summary["failed_tests"] == [WEBSOCKET_CASE]
    assert run.case("Health Check").outcome == "passed"


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({"CONNECT_ENDPOINT": "openresty:80/connect"}, "ws://openresty:80/connect"),
        ({"CONNECT_ENDPOINT": "ws://ingress:8080/connect"}, "ws://ingress:8080/connect"),
        ({"CONNECT_ENDPOINT": "wss://edge.example/connect?x=1"}, "wss://edge.example/connect?x=1"),
        ({"CONNECT_ENDPOINT": "https://edge.example:443"}, "wss://edge.example:443/connect"),
        ({"CONNECT_ENDPOINT": "[::1]:9080/connect"}, "ws://[::1]:9080/connect"),
        ({}, "ws://127.0.0.1:5012/connect"),
    ],
)
def test_connect_endpoint_forms(env, url):
    assert connect_endpoint(env, "http://127.0.0.1:5012") == url


@pytest.fixture
def ws_server() -> Iterator[Callable[[Callable[[ServerConnection], None]], str]]:
    """A websockets server in a thread running ``handler`` per connection; returns its URL."""
    servers = []

    def start(handler: Callable[[ServerConnection], None]) -> str:
        server = serve(handler, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"ws://127.0.0.1:{server.socket.getsockname()[1]}/connect"

    yield start
    for server in servers:
        server.shutdown()


def welcome_then(answer: Callable[[str | bytes], str | bytes | None]) -> Callable[[ServerConnection], None]:
    def handler(ws: ServerConnection) -> None:
        ws.send(json.dumps({"type": "welcome", "appId": "x"}))
        for message in ws:
            reply = answer(message)
            if reply is not None:
                ws.send(reply)

    return handler


def test_wrong_echo_fails_with_what_came_back(ws_server):
    url = ws_server(welcome_then(lambda m: "something else"))
    with pytest.raises(WebSocketFailure, match=r"text echo differs: sent 'reference-tester echo \w+', got"):
        round_trip(url, 30, lambda line: None)


def test_a_first_message_that_is_no_welcome_fails(ws_server):
    url = ws_server(lambda ws: ws.send("hello"))
    with pytest.raises(WebSocketFailure, match="the first message is not a JSON welcome: 'hello'"):
        round_trip(url, 30, lambda line: None)


def test_silence_after_the_upgrade_fails_at_the_deadline(ws_server):
    url = ws_server(welcome_then(lambda m: None))  # welcome, then never echoes
    with pytest.raises(WebSocketFailure, match="no answer within the 1s deadline"):
        round_trip(url, 1, lambda line: None)


def test_an_upgrade_nobody_answers_fails_at_the_deadline():
    with socket.socket() as listener:  # accepts TCP (backlog), never answers the HTTP request
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"ws://127.0.0.1:{listener.getsockname()[1]}/connect"
        with pytest.raises(WebSocketFailure, match="the upgrade got no answer within 1s"):
            round_trip(url, 1, lambda line: None)


def test_refused_tcp_connection_stays_an_os_error():
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        with pytest.raises(ConnectionRefusedError):
            round_trip(f"ws://127.0.0.1:{sock.getsockname()[1]}/connect", 5, lambda line: None)
