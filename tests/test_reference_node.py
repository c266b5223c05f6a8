"""The reference node: enablement read the way bannou reads it, the HTTP contract, startup
delay, configured exit code and SIGTERM, against real processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from pytest_bannou.reference.node import LAYERS, NodeApp, Request, Response, enabled_services

INFRA = list(LAYERS["INFRASTRUCTURE"])
ALL = [s for services in LAYERS.values() for s in services]


# --- enablement ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, ALL),
        ({"BANNOU_SERVICES_ENABLED": "true"}, ALL),
        ({"BANNOU_SERVICES_ENABLED": "false"}, INFRA),
        ({"BANNOU_SERVICES_ENABLED": "FALSE", "AUTH_SERVICE_ENABLED": "True"}, [*INFRA, "auth"]),
        (
            {"BANNOU_SERVICES_ENABLED": "false", "GAME_SESSION_SERVICE_ENABLED": "true"},
            [*INFRA, "game-session"],
        ),
        # the master switch beats layer flags; individual overrides beat both
        ({"BANNOU_SERVICES_ENABLED": "false", "BANNOU_ENABLE_APP_FOUNDATION": "true"}, INFRA),
        ({"BANNOU_SERVICES_ENABLED": "false", "STATE_SERVICE_ENABLED": "false"}, INFRA),
        ({"BANNOU_SERVICES_ENABLED": "false", "ACCOUNTS_SERVICE_ENABLED": "true"}, [*INFRA, "accounts"]),
        ({"BANNOU_SERVICES_ENABLED": "", "AUTH_SERVICE_ENABLED": ""}, ALL),
    ],
)
def test_enablement_matrix(env, expected):
    assert enabled_services(env) == expected


def test_layer_flags_disable_whole_layers_unless_a_service_is_named():
    env = {"BANNOU_ENABLE_GAME_FOUNDATION": "false", "BANNOU_ENABLE_GAME_FEATURES": "false"}
    enabled = enabled_services(env)
    assert not set(LAYERS["GAME_FOUNDATION"]) & set(enabled)
    assert not set(LAYERS["GAME_FEATURES"]) & set(enabled)
    assert set(LAYERS["APP_FOUNDATION"]) <= set(enabled)
    env["CHARACTER_SERVICE_ENABLED"] = "true"
    env["AUTH_SERVICE_ENABLED"] = "false"
    enabled = enabled_services(env)
    assert "character" in enabled and "auth" not in enabled and "realm" not in enabled


def test_forwarder_answers_for_services_the_node_does_not_host():
    def forward(service: str, request: Request) -> Response | None:
        return Response(200, {"forwarded": service}) if service == "auth" else None

    app = NodeApp(app_id="main", services=["testing"], forwarder=forward)
    assert app.handle(Request("POST", "/auth/login", "", None)).body == {"forwarded": "auth"}
    missing = app.handle(Request("POST", "/chat/send", "", None))
    assert missing.status == 404 and missing.body["enabled"] == ["testing"]


# --- the process ---------------------------------------------------------------------------


class Running:
    def __init__(self, proc: subprocess.Popen, port: int, lines: list[str]) -> None:
        self.proc, self.port, self.lines = proc, port, lines
        self.url = f"http://127.0.0.1:{port}"


def start(env: dict[str, str]) -> subprocess.Popen:
    full = {**os.environ, "HTTP_WEB_HOST_PORT": "0", "BANNOU_BIND_HOST": "127.0.0.1", **env}
    return subprocess.Popen(
        [sys.executable, "-m", "pytest_bannou.reference.node"],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def run_node() -> Iterator:
    procs: list[subprocess.Popen] = []

    def factory(**env: str) -> Running:
        proc = start(env)
        procs.append(proc)
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if m := re.search(r" listening on :(\d+) ", line):
                return Running(proc, int(m.group(1)), lines)
        raise AssertionError(f"node exited without listening: {''.join(lines)}")

    yield factory
    for proc in procs:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_health_and_service_routes(run_node):
    node = run_node(BANNOU_APP_ID="bannou-auth", BANNOU_SERVICES_ENABLED="false", AUTH_SERVICE_ENABLED="true")
    assert re.search(
        r"bannou reference node bannou-auth listening on :\d+ services=state,.*,auth$", node.lines[-1]
    )
    health = httpx.get(node.url + "/health").json()
    assert health["status"] == "healthy" and health["appId"] == "bannou-auth"
    assert health["services"] == [*INFRA, "auth"] and health["pid"] == node.proc.pid
    assert health["uptime"] >= 0
    echo = httpx.post(node.url + "/auth/login?x=1", json={"user": "a"})
    assert echo.status_code == 200
    assert echo.json() == {
        "service": "auth",
        "appId": "bannou-auth",
        "method": "POST",
        "path": "/auth/login",
        "query": "x=1",
        "body": {"user": "a"},
    }
    assert httpx.get(node.url + "/auth/anything").json()["method"] == "GET"
    missing = httpx.post(node.url + "/character/get", json={})
    assert missing.status_code == 404
    body = missing.json()
    assert body["service"] == "character" and body["appId"] == "bannou-auth"
    assert "not enabled" in body["error"] and body["enabled"] == [*INFRA, "auth"]


def test_default_app_id_and_one_log_line_per_request(run_node):
    node = run_node()
    assert httpx.get(node.url + "/health").json()["appId"] == "bannou"
    httpx.post(node.url + "/nope/x")
    node.proc.send_signal(signal.SIGTERM)
    rest = node.proc.stdout.read()
    assert re.search(r"GET /health 200 ", rest) and re.search(r"POST /nope/x 404 ", rest)


def test_sigterm_is_a_clean_shutdown(run_node):
    node = run_node()
    node.proc.send_signal(signal.SIGTERM)
    assert node.proc.wait(timeout=10) == 0
    assert "stopping (SIGTERM)" in node.proc.stdout.read()


def test_startup_delay_postpones_listening():
    before = datetime.now(UTC)
    proc = start({"BANNOU_REFERENCE_STARTUP_DELAY": "0.6"})
    try:
        out = ""
        for line in proc.stdout:
            out += line
            if " listening on " in line:
                break
        listening = datetime.fromisoformat(line.split(" ", 1)[0])
        # counted from process start, which the kernel records in clock ticks (10 ms)
        assert (listening - before).total_seconds() >= 0.6 - 0.03, out
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_configured_exit_code_after_the_delay():
    proc = start({"BANNOU_REFERENCE_EXIT_CODE": "7", "BANNOU_REFERENCE_STARTUP_DELAY": "0.1"})
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 7
    assert "exiting with code 7" in out and "listening" not in out


def test_sigterm_during_the_startup_delay_exits_0():
    proc = start({"BANNOU_REFERENCE_STARTUP_DELAY": "600"})
    try:
        assert "starting" in proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.stdout.close()


def test_bad_setting_and_busy_port_are_reported(run_node):
    proc = start({"BANNOU_REFERENCE_STARTUP_DELAY": "soon"})
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "bad setting" in out
    node = run_node()
    proc = start({"HTTP_WEB_HOST_PORT": str(node.port), "BANNOU_BIND_HOST": "127.0.0.1"})
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1 and f"cannot listen on 127.0.0.1:{node.port}" in out


def test_startup_line_is_flushed_immediately():
    proc = start({})
    try:
        deadline = time.monotonic() + 30
        line = proc.stdout.readline()
        assert "starting" in line and time.monotonic() < deadline
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


# --- the WebSocket at /connect --------------------------------------------------------------


def ws_url(node: Running, path: str = "/connect") -> str:
    return f"ws://127.0.0.1:{node.port}{path}"


def test_websocket_at_connect_welcomes_echoes_pongs_and_closes_cleanly(run_node):
    import json

    from websockets.sync.client import connect

    node = run_node(
        BANNOU_APP_ID="bannou-edge", BANNOU_SERVICES_ENABLED="false", CONNECT_SERVICE_ENABLED="true"
    )
    with connect(ws_url(node), proxy=None, open_timeout=30) as ws:
        welcome = json.loads(ws.recv(timeout=30))
        assert welcome["type"] == "welcome" and welcome["service"] == "connect"
        assert welcome["appId"] == "bannou-edge" and welcome["services"] == [*INFRA, "connect"]
        ws.send("héllo")
        assert ws.recv(timeout=30) == "héllo"
        ws.send(b"\x00\xff\x10")
        assert ws.recv(timeout=30) == b"\x00\xff\x10"
        ws.send(["frag", "mented"])  # one message in three frames comes back whole
        assert ws.recv(timeout=30) == "fragmented"
        assert ws.ping(b"p").wait(30)
    assert ws.close_code == 1000
    # plain HTTP on the same path still answers like any enabled service (the testers' routing check)
    assert httpx.post(node.url + "/connect/ping", json={}).json()["service"] == "connect"
    node.proc.send_signal(signal.SIGTERM)
    rest = node.proc.stdout.read()
    assert re.search(r"GET /connect 101 \S+ms websocket closed \(code 1000\), 3 message\(s\) echoed", rest)


def test_websocket_upgrade_refused_where_connect_is_not_enabled(run_node):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    node = run_node(BANNOU_SERVICES_ENABLED="false", AUTH_SERVICE_ENABLED="true")
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(node), proxy=None, open_timeout=30)
    assert refused.value.response.status_code == 404
    assert b"service 'connect' is not enabled" in refused.value.response.body
    # an upgrade on another path of an enabled service is an ordinary request, not a WebSocket
    with pytest.raises(InvalidStatus) as other:
        connect(ws_url(node, "/auth/socket"), proxy=None, open_timeout=30)
    assert other.value.response.status_code == 200


def test_invalid_websocket_handshake_is_a_400_and_the_node_keeps_serving(run_node):
    import socket

    node = run_node(BANNOU_SERVICES_ENABLED="false", CONNECT_SERVICE_ENABLED="true")
    with socket.create_connection(("127.0.0.1", node.port), timeout=30) as sock:
        # Upgrade and Connection, but no Sec-WebSocket-Key / Version: not a valid RFC 6455 handshake
        sock.sendall(b"GET /connect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert b"Sec-WebSocket-Key" in answer
    assert httpx.get(node.url + "/health").status_code == 200
