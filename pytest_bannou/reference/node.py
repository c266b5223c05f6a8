"""A small, real bannou node: ``python -m pytest_bannou.reference.node``.

It implements the parts of a bannou node's contract that environments and tests rely on, so
everything can be deployed and tested without bannou's own images:

- listens on ``BANNOU_BIND_HOST`` (default ``0.0.0.0``) port ``HTTP_WEB_HOST_PORT`` (default 80;
  0 picks a free port, printed in the startup line);
- ``GET /health`` -> 200 ``{status, appId, services, node, pid, uptime}``;
- ``GET|POST /{service}/...`` -> 200 echo for enabled services, JSON 404 for the others;
- a WebSocket at ``/connect`` when ``connect`` is enabled (welcome message, echo, ping/pong,
  clean close: see ``reference.websocket``); an upgrade elsewhere is an ordinary request;
- service enablement read the way bannou's plugin loader reads it (see ``enabled_services``);
- ``BANNOU_REFERENCE_STARTUP_DELAY`` (seconds from process start until it binds) and
  ``BANNOU_REFERENCE_EXIT_CODE`` (exit with that code after the delay) for readiness tests;
- one log line per request on stdout (flushed), SIGTERM -> clean shutdown with exit code 0.

Request handling lives in ``NodeApp`` (no HTTP types), so routing can be extended: a
``forwarder`` receives requests for services this node does not host (service-mapping routing).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from ..topology.contract import ALWAYS_ON_LAYER, DEFAULT_APP_ID, LAYERS, UNLISTED_LAYER

DEFAULT_PORT = 80
CONNECT_SERVICE = "connect"
CONNECT_PATH = "/connect"


def env_key(service: str) -> str:
    """``game-session`` -> ``GAME_SESSION`` (bannou's environment-variable prefix)."""
    return service.replace("-", "_").upper()


def _flag(value: str | None) -> bool | None:
    """bannou's boolean reading: unset/empty -> None, else true iff ``true`` (any case)."""
    if value is None or not value.strip():
        return None
    return value.strip().lower() == "true"


def is_upgrade(upgrade: str | None, connection: str | None) -> bool:
    """Whether a request asks for a WebSocket (``Upgrade: websocket``, ``Connection: upgrade``)."""
    tokens = {t.strip().lower() for t in (connection or "").split(",")}
    return (upgrade or "").strip().lower() == "websocket" and "upgrade" in tokens


def layer_of(service: str) -> str:
    for layer, services in LAYERS.items():
        if service in services:
            return layer
    return UNLISTED_LAYER


def known_services(env: Mapping[str, str]) -> list[str]:
    """Every service in the layer table plus any named by a ``{SERVICE}_SERVICE_ENABLED`` variable."""
    names = [s for services in LAYERS.values() for s in services]
    table_keys = {env_key(s) for s in names}
    for key in env:
        if key.endswith("_SERVICE_ENABLED") and key != "_SERVICE_ENABLED":
            prefix = key[: -len("_SERVICE_ENABLED")]
            if prefix not in table_keys:
                names.append(prefix.lower().replace("_", "-"))
                table_keys.add(prefix)
    return names


def is_enabled(service: str, env: Mapping[str, str]) -> bool:
    """bannou's resolution order: required infrastructure -> individual override
    (``{SERVICE}_SERVICE_ENABLED``) -> master kill switch (``BANNOU_SERVICES_ENABLED``, default
    true) -> layer flag (``BANNOU_ENABLE_{LAYER}``, default true)."""
    layer = layer_of(service)
    if layer == ALWAYS_ON_LAYER:
        return True
    override = _flag(env.get(f"{env_key(service)}_SERVICE_ENABLED"))
    if override is not None:
        return override
    if _flag(env.get("BANNOU_SERVICES_ENABLED")) is False:
        return False
    return _flag(env.get(f"BANNOU_ENABLE_{layer}")) is not False


def enabled_services(env: Mapping[str, str]) -> list[str]:
    return [s for s in known_services(env) if is_enabled(s, env)]


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query string
    query: str
    body: object  # parsed JSON, or the raw text when it is not JSON, or None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Response:
    status: int
    body: Mapping[str, object]


# A forwarder answers requests for services this node does not host (e.g. by routing them to the
# node the service mappings name); returning None falls back to the JSON 404.
Forwarder = Callable[[str, Request], Response | None]


@dataclass
class NodeApp:
    """The node's behaviour, independent of the HTTP server."""

    app_id: str
    services: list[str]
    node: str = field(default_factory=socket.gethostname)
    started: float = field(default_factory=time.monotonic)
    forwarder: Forwarder | None = None
    mappings_version: Callable[[], int | None] | None = None  # set when messaging is configured

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> NodeApp:
        return cls(
            app_id=env.get("BANNOU_APP_ID") or DEFAULT_APP_ID,
            services=enabled_services(env),
            node=env.get("BANNOU_NODE_NAME") or socket.gethostname(),
        )

    def handle(self, request: Request) -> Response:
        parts = [p for p in request.path.split("/") if p]
        if not parts:
            return self.index()
        if parts[0] == "health" and len(parts) == 1:
            return self.health()
        return self.service_request(parts[0], request)

    def serves_websocket(self, path: str) -> bool:
        """``/connect`` is a WebSocket where the ``connect`` service runs (else a JSON 404, or
        whatever the forwarder answers, like any request for a service not hosted here)."""
        return path.rstrip("/") == CONNECT_PATH and CONNECT_SERVICE in self.services

    def index(self) -> Response:
        return Response(200, {"appId": self.app_id, "services": self.services, "health": "/health"})

    def health(self) -> Response:
        body = {
            "status": "healthy",
            "appId": self.app_id,
            "services": self.services,
            "node": self.node,
            "pid": os.getpid(),
            "uptime": round(time.monotonic() - self.started, 3),
        }
        if self.mappings_version is not None:
            body["mappingsVersion"] = self.mappings_version()
        return Response(200, body)

    def service_request(self, service: str, request: Request) -> Response:
        if self.forwarder is not None:  # asked first: the mappings may route an enabled service away
            forwarded = self.forwarder(service, request)
            if forwarded is not None:
                return forwarded
        if service in self.services:
            return self.answer(service, request)
        return self.not_hosted(service)

    def answer(self, service: str, request: Request) -> Response:
        return Response(
            200,
            {
                "service": service,
                "appId": self.app_id,
                "method": request.method,
                "path": request.path,
                "query": request.query,
                "body": request.body,
            },
        )

    def not_hosted(self, service: str) -> Response:
        return Response(
            404,
            {
                "error": f"service {service!r} is not enabled on app id {self.app_id!r}",
                "service": service,
                "appId": self.app_id,
                "enabled": self.services,
            },
        )


def log(line: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    sys.stdout.write(f"{stamp} {line}\n")
    sys.stdout.flush()


class Handler(BaseHTTPRequestHandler):
    """HTTP glue: parse, call ``NodeApp.handle``, write JSON, log one line."""

    app: NodeApp  # set on the subclass made by ``make_server``
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    do_PUT = do_POST
    do_DELETE = do_GET

    def _serve(self) -> None:
        started = time.monotonic()
        url = urlsplit(self.path)
        if self.app.serves_websocket(url.path) and is_upgrade(
            self.headers.get("Upgrade"), self.headers.get("Connection")
        ):
            self._websocket(url.path, started)
            return
        request = Request(self.command, url.path, url.query, self._read_body(), dict(self.headers.items()))
        response = self.app.handle(request)
        payload = json.dumps(response.body).encode()
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        ms = (time.monotonic() - started) * 1000
        log(f"{self.command} {url.path} {response.status} {ms:.1f}ms")

    def _websocket(self, path: str, started: float) -> None:
        """Hand the connection to ``reference.websocket`` (imported on the first upgrade only)."""
        from . import websocket

        self.close_connection = True  # the socket is the WebSocket's until it closes
        head = websocket.raw_request(self.requestline, self.headers.items())
        greeting = websocket.welcome(self.app.app_id, self.app.node, self.app.services)
        log(f"{self.command} {path} upgrade")
        shut = websocket.shutdown_writer(self.connection)
        session = websocket.serve(head, greeting, self.rfile, self.wfile, shut)
        ms = (time.monotonic() - started) * 1000
        log(f"{self.command} {path} {session.status} {ms:.1f}ms {session.describe()}")

    def _read_body(self) -> object:
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0:
            return None
        raw = self.rfile.read(length).decode("utf-8", "replace")
        try:
            return json.loads(raw)
        except ValueError:
            return raw

    def log_message(self, format: str, *args: object) -> None:
        """Requests are logged by ``_serve``; silence the stdlib's stderr lines."""


def make_server(app: NodeApp, host: str, port: int) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"app": app})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def process_age() -> float:
    """Seconds since this process started (Linux), else 0: the startup delay counts from the
    start of the process, so interpreter start-up is part of it, as it is for a real node."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


class _Terminate(Exception):
    """Raised from the SIGTERM handler to leave ``serve_forever`` at once."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminate


def attach_messaging(app: NodeApp, env: Mapping[str, str]) -> object | None:
    """Heartbeats, mapping subscription and forwarding when ``BANNOU_AMQP_URL`` is set (see
    ``reference.messaging``); peers' URLs come from ``BANNOU_MESH_ENDPOINTS`` and, rereading it
    on change, the file named by ``BANNOU_MESH_ENDPOINTS_FILE`` (see ``reference.mesh_file``).
    ``BANNOU_REFERENCE_HEARTBEAT_STATUS`` sets the reported status (tests of the restart policy)."""
    from .mesh_file import MESH_ENDPOINTS_FILE_ENV, EndpointsFile
    from .messaging import NodeMessaging

    m = NodeMessaging.from_env(env, app.app_id, app.services)
    if m is None:
        return None
    if env.get("BANNOU_REFERENCE_HEARTBEAT_STATUS"):
        m.heartbeats.set_status(env["BANNOU_REFERENCE_HEARTBEAT_STATUS"])
    # the mappings decide, as bannou's mesh does: a service enabled here (a node without a service
    # list runs them all) but mapped to another app id is forwarded there
    m.forwarder.services = frozenset()
    static = dict(m.forwarder.endpoints)
    file = EndpointsFile(env[MESH_ENDPOINTS_FILE_ENV]) if env.get(MESH_ENDPOINTS_FILE_ENV) else None

    def forward(service: str, request: Request) -> Response | None:
        if file is not None:
            m.forwarder.endpoints = {**file.read(), **static}
        path = request.path + (f"?{request.query}" if request.query else "")
        body = request.body
        if body is not None and not isinstance(body, str):
            body = json.dumps(body)
        out = m.forwarder.forward_service(service, request.method, path, body, request.headers)
        if out is None:
            return None
        status, _headers, content = out
        try:
            data = json.loads(content)
        except ValueError:
            data = {"body": content.decode("utf-8", "replace")}
        return Response(status, data if isinstance(data, dict) else {"body": data})

    app.forwarder = forward
    app.mappings_version = lambda: m.table.version
    return m


def main(argv: Iterable[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    signal.signal(signal.SIGTERM, _on_sigterm)
    app = NodeApp.from_env(env)
    try:
        delay = float(env.get("BANNOU_REFERENCE_STARTUP_DELAY") or 0)
        port = int(env.get("HTTP_WEB_HOST_PORT") or DEFAULT_PORT)
        exit_code = env.get("BANNOU_REFERENCE_EXIT_CODE")
        exit_code_n = int(exit_code) if exit_code not in (None, "") else None
    except ValueError as exc:
        log(f"bannou reference node {app.app_id}: bad setting: {exc}")
        return 2
    host = env.get("BANNOU_BIND_HOST") or "0.0.0.0"
    try:
        log(f"bannou reference node {app.app_id} starting (pid {os.getpid()}, startup delay {delay}s)")
        if delay > 0:
            time.sleep(max(0.0, delay - process_age()))
        if exit_code_n is not None:
            log(f"bannou reference node {app.app_id} exiting with code {exit_code_n} (as configured)")
            return exit_code_n
        try:
            server = make_server(app, host, port)
        except OSError as exc:
            log(f"bannou reference node {app.app_id} cannot listen on {host}:{port}: {exc}")
            return 1
        try:
            messaging = attach_messaging(app, env)
            if messaging is not None:
                messaging.start()  # subscribed and first heartbeat sent before /health answers
        except Exception as exc:  # BannouError from settings or an unreachable broker
            log(f"bannou reference node {app.app_id}: messaging: {exc}")
            server.server_close()
            return 1
        bound = server.server_address[1]
        log(f"bannou reference node {app.app_id} listening on :{bound} services={','.join(app.services)}")
        try:
            server.serve_forever(poll_interval=0.05)
        finally:
            server.server_close()
            if messaging is not None:
                messaging.stop()  # heartbeat shutting_down
    except _Terminate:
        log(f"bannou reference node {app.app_id} stopping (SIGTERM)")
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
