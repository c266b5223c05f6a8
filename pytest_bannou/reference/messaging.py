"""The reference node's side of bannou's messaging contract.

- ``HeartbeatPublisher``: publishes ServiceHeartbeatEvent on ``bannou.service-heartbeat`` on
  start, every ``interval`` seconds, immediately when the status changes, and ``shutting_down``
  on stop.
- ``MappingTable`` + ``MappingSubscriber``: the node's routing table, fed by
  FullServiceMappingsEvent from ``bannou.full-service-mappings``; versions <= the current one
  are rejected, as bannou's mesh does.
- ``Forwarder`` / ``forward``: a request for a service this node does not host goes to the node
  the mapping names; other nodes' base URLs come from ``BANNOU_MESH_ENDPOINTS``
  (``appId=http://127.0.0.1:port,...``, set by the environment layer).

Wiring into ``node.py``: ``m = NodeMessaging.from_env(os.environ, app_id, services)`` (None when
``BANNOU_AMQP_URL`` is unset), ``m.start()`` before serving, ``m.stop()`` on shutdown; its
``forwarder`` hook (``(service, request)``) calls ``m.forwarder.forward_service(service, method,
path_with_query, body_bytes, headers)``, which returns ``None`` when the request stays local.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from pytest_bannou.errors import BannouError
from pytest_bannou.messaging.broker import ConsumerThread, connect_broker, declare_exchange
from pytest_bannou.messaging.contract import (
    EXCHANGE,
    HEARTBEAT_TOPIC,
    INSTANCE_STATUSES,
    MAPPINGS_TOPIC,
    MessagingError,
    broker_url,
    heartbeat_event,
    parse_mappings,
    service_status_for,
)

log = logging.getLogger("pytest_bannou.reference.messaging")

MESH_ENDPOINTS_ENV = "BANNOU_MESH_ENDPOINTS"
FORWARDED_HEADER = "x-bannou-forwarded-by"
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


# --------------------------------------------------------------------------------------------
# heartbeats


class HeartbeatPublisher:
    """Publishes this node's heartbeats from a daemon thread (pika is used by that thread only)."""

    def __init__(
        self,
        app_id: str,
        services: Sequence[str],
        amqp_url: str,
        interval: float = 30.0,
        *,
        status: str = "healthy",
        capacity: Mapping[str, Any] | None = None,
        issues: Sequence[str] | None = None,
        deadline: float = 10.0,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"heartbeat interval must be positive, got {interval!r}")
        _check_status(status)
        self.app_id = app_id
        self.services = tuple(services)
        self.amqp_url = broker_url(amqp_url)
        self.interval = interval
        self.deadline = deadline
        self.instance_id = str(uuid.uuid4())
        self.published = 0
        self._service_ids = {s: str(uuid.uuid4()) for s in self.services}
        self._status = status
        self._capacity = dict(capacity) if capacity is not None else None
        self._issues = list(issues) if issues is not None else None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    @property
    def status(self) -> str:
        return self._status

    def set_status(
        self, status: str, *, issues: Sequence[str] | None = None, capacity: Mapping[str, Any] | None = None
    ) -> None:
        """Change the reported status; a heartbeat goes out at once."""
        _check_status(status)
        with self._lock:
            self._status = status
            self._issues = list(issues) if issues is not None else None
            if capacity is not None:
                self._capacity = dict(capacity)
        self._wake.set()

    def event(self, status: str | None = None) -> dict[str, Any]:
        with self._lock:
            st = status or self._status
            per_service = service_status_for(st)
            services = [
                {"serviceId": self._service_ids[s], "serviceName": s, "status": per_service}
                for s in self.services
            ]
            return heartbeat_event(
                self.app_id,
                st,
                services,
                service_id=self.instance_id,
                capacity=self._capacity,
                issues=self._issues,
            )

    def start(self) -> HeartbeatPublisher:
        """Connect and publish the first heartbeat; raises ``BrokerUnreachable`` within the deadline."""
        self._thread = threading.Thread(target=self._run, name=f"bannou-heartbeat-{self.app_id}", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.deadline + 5.0):
            self._stopping.set()
            raise MessagingError(
                f"heartbeat publisher of {self.app_id!r} did not start within {self.deadline:g}s"
            )
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Publish ``shutting_down`` and disconnect."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> HeartbeatPublisher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        import pika.exceptions

        try:
            conn = connect_broker(self.amqp_url, deadline=self.deadline)
            channel = conn.channel()
            declare_exchange(channel)
            self._publish(channel, self.event())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stopping.is_set():
                self._wake.wait(self.interval)
                self._wake.clear()
                if self._stopping.is_set():
                    break
                try:
                    if conn.is_closed:
                        conn = connect_broker(self.amqp_url, deadline=self.deadline)
                        channel = conn.channel()
                        declare_exchange(channel)
                    self._publish(channel, self.event())
                except (pika.exceptions.AMQPError, OSError, MessagingError) as exc:
                    log.warning("heartbeat of %s not published, retrying next interval: %r", self.app_id, exc)
                    if conn.is_open:
                        conn.close()
            if conn.is_open:
                self._publish(channel, self.event("shutting_down"))
        except (pika.exceptions.AMQPError, OSError) as exc:
            log.warning("final heartbeat of %s not published: %r", self.app_id, exc)
        finally:
            if conn.is_open:
                conn.close()

    def _publish(self, channel: Any, event: Mapping[str, Any]) -> None:
        import pika

        channel.basic_publish(
            EXCHANGE,
            HEARTBEAT_TOPIC,
            json.dumps(event, separators=(",", ":")).encode(),
            pika.BasicProperties(content_type="application/json", message_id=str(event["eventId"])),
        )
        self.published += 1


def _check_status(status: str) -> None:
    if status not in INSTANCE_STATUSES:
        raise ValueError(f"heartbeat status {status!r} is not one of {', '.join(INSTANCE_STATUSES)}")


# --------------------------------------------------------------------------------------------
# mappings


class MappingTable:
    """service -> app id, from the newest FullServiceMappingsEvent seen. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mappings: dict[str, str] = {}
        self._default: str | None = None
        self._version: int | None = None
        self._changed = threading.Condition(self._lock)
        self.rejected = 0

    @property
    def version(self) -> int | None:
        return self._version

    @property
    def mappings(self) -> dict[str, str]:
        with self._lock:
            return dict(self._mappings)

    @property
    def default_app_id(self) -> str | None:
        return self._default

    def apply(self, event: Mapping[str, Any] | bytes | str) -> bool:
        """Take a mapping event; False (and nothing changes) when its version is not newer.
        ``ValueError`` for a malformed event."""
        data = parse_mappings(event)
        with self._lock:
            if self._version is not None and data["version"] <= self._version:
                self.rejected += 1
                log.info("rejected service mappings version %s (current %s)", data["version"], self._version)
                return False
            self._mappings = dict(data["mappings"])
            self._default = data.get("defaultAppId") or "bannou"
            self._version = data["version"]
            self._changed.notify_all()
            return True

    def route(self, service: str) -> str | None:
        """The app id that serves ``service``: its mapping, else the default app id; None before
        any mapping event arrived."""
        with self._lock:
            if self._version is None:
                return None
            return self._mappings.get(service, self._default)

    def wait_for_version(self, version: int, timeout: float = 10.0) -> int:
        """Block until a version >= ``version`` is applied; ``MessagingError`` at the deadline."""
        end = time.monotonic() + timeout
        with self._lock:
            while self._version is None or self._version < version:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    raise MessagingError(
                        f"service mappings version {version} not received within {timeout:g}s"
                        f" (current: {self._version}); is the publisher on exchange {EXCHANGE!r}?"
                    )
                self._changed.wait(remaining)
            return self._version


class MappingSubscriber(ConsumerThread):
    """Feeds a ``MappingTable`` from ``bannou.full-service-mappings``; malformed events are logged
    and dropped. Daemon thread between ``start()`` and ``stop()``; when the broker drops it, it
    resubscribes (mappings are republished periodically and on every change)."""

    what = "mapping subscriber"
    log = log

    def __init__(self, table: MappingTable, amqp_url: str, *, deadline: float = 10.0) -> None:
        super().__init__(amqp_url, deadline)
        self.table = table
        self.malformed = 0

    def _connect(self) -> Any:
        conn = connect_broker(self.amqp_url, deadline=self.deadline, heartbeat=30)
        channel = conn.channel()
        declare_exchange(channel)
        queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
        channel.queue_bind(queue, EXCHANGE, routing_key=MAPPINGS_TOPIC)
        channel.basic_consume(queue, self._on_message, auto_ack=True)
        return conn

    def _pump(self, conn: Any) -> None:
        conn.process_data_events(time_limit=0.1)

    def _on_message(self, _ch: Any, _method: Any, _props: Any, body: bytes) -> None:
        try:
            self.table.apply(body)
        except ValueError as exc:
            self.malformed += 1
            log.warning("ignoring malformed service mappings event: %s; body: %.200r", exc, body)


# --------------------------------------------------------------------------------------------
# forwarding


def parse_mesh_endpoints(value: str | None) -> dict[str, str]:
    """``appId=http://host:port,...`` -> {appId: base URL}; empty or None -> {}."""
    endpoints: dict[str, str] = {}
    for raw in (value or "").split(","):
        entry = raw.strip()
        if not entry:
            continue
        app_id, sep, url = entry.partition("=")
        app_id, url = app_id.strip(), url.strip()
        parts = urlsplit(url)
        if not sep or not app_id or parts.scheme not in ("http", "https") or not parts.netloc:
            raise BannouError(
                f"{MESH_ENDPOINTS_ENV}: bad entry {entry!r}; expected appId=http://host:port,"
                f" e.g. {MESH_ENDPOINTS_ENV}='bannou=http://127.0.0.1:8080,auth=http://127.0.0.1:8081'"
            )
        endpoints[app_id] = url.rstrip("/")
    return endpoints


def forward(
    method: str,
    path: str,
    body: bytes | str | None,
    headers: Mapping[str, str] | None,
    target_base_url: str,
    *,
    timeout: float = 30.0,
) -> tuple[int, dict[str, str], bytes]:
    """Send one HTTP request to ``target_base_url + path`` (path may carry a query string) and
    return (status, headers, body). Hop-by-hop headers are dropped both ways. An unreachable
    target yields a 502 whose JSON body names the target and the error."""
    url = target_base_url.rstrip("/") + "/" + path.lstrip("/")
    out_headers = {k: v for k, v in (headers or {}).items() if k.lower() not in HOP_BY_HOP}
    content = body.encode() if isinstance(body, str) else body
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            resp = client.request(method.upper(), url, content=content, headers=out_headers)
    except httpx.HTTPError as exc:
        payload = {"error": f"forwarding {method.upper()} {path} to {target_base_url} failed: {exc!r}"}
        return 502, {"content-type": "application/json"}, json.dumps(payload).encode()
    back = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP}
    return resp.status_code, back, resp.content


class Forwarder:
    """Routes requests for services this node does not host to the node the mappings name."""

    def __init__(
        self,
        app_id: str,
        services: Sequence[str],
        table: MappingTable,
        endpoints: Mapping[str, str],
        *,
        send: Callable[..., tuple[int, dict[str, str], bytes]] = forward,
    ) -> None:
        self.app_id = app_id
        self.services = frozenset(services)
        self.table = table
        self.endpoints = dict(endpoints)
        self._send = send

    @classmethod
    def from_env(
        cls, app_id: str, services: Sequence[str], table: MappingTable, env: Mapping[str, str]
    ) -> Forwarder:
        return cls(app_id, services, table, parse_mesh_endpoints(env.get(MESH_ENDPOINTS_ENV)))

    def target(self, service: str) -> tuple[str, str] | None:
        """(app id, base URL) to forward ``service`` to, or None to answer locally."""
        if service in self.services:
            return None
        app_id = self.table.route(service)
        if app_id is None or app_id == self.app_id:
            return None
        url = self.endpoints.get(app_id)
        if url is None:
            raise BannouError(
                f"node {self.app_id!r}: service {service!r} is mapped to app id {app_id!r} (mappings version"
                f" {self.table.version}) but {MESH_ENDPOINTS_ENV} has no URL for it"
                f" (known: {', '.join(sorted(self.endpoints)) or 'none'})"
            )
        return app_id, url

    def forward_service(
        self,
        service: str,
        method: str,
        path: str,
        body: bytes | str | None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes] | None:
        """Forward if the mappings send ``service`` elsewhere; None means handle it locally. A
        request that was already forwarded once is not forwarded again (no routing loops)."""
        headers = dict(headers or {})
        if any(k.lower() == FORWARDED_HEADER for k in headers):
            return None
        try:
            target = self.target(service)
        except BannouError as exc:
            return 502, {"content-type": "application/json"}, json.dumps({"error": str(exc)}).encode()
        if target is None:
            return None
        headers[FORWARDED_HEADER] = self.app_id
        return self._send(method, path, body, headers, target[1])


# --------------------------------------------------------------------------------------------
# everything a node needs, from its environment

AMQP_URL_ENV = "BANNOU_AMQP_URL"
HEARTBEAT_INTERVAL_ENV = "BANNOU_HEARTBEAT_INTERVAL"
DEFAULT_HEARTBEAT_INTERVAL = 30.0


class NodeMessaging:
    """A node's heartbeats, mapping subscription and forwarder, configured from environment:
    ``BANNOU_AMQP_URL`` (messaging is off without it), ``BANNOU_HEARTBEAT_INTERVAL`` (seconds,
    default 30) and ``BANNOU_MESH_ENDPOINTS``. ``from_env`` returns None when messaging is off."""

    def __init__(
        self,
        app_id: str,
        services: Sequence[str],
        amqp_url: str,
        interval: float,
        endpoints: Mapping[str, str],
    ) -> None:
        self.table = MappingTable()
        self.heartbeats = HeartbeatPublisher(app_id, services, amqp_url, interval)
        self.subscriber = MappingSubscriber(self.table, amqp_url)
        self.forwarder = Forwarder(app_id, services, self.table, endpoints)

    @classmethod
    def from_env(cls, env: Mapping[str, str], app_id: str, services: Sequence[str]) -> NodeMessaging | None:
        url = (env.get(AMQP_URL_ENV) or "").strip()
        if not url:
            return None
        raw = (env.get(HEARTBEAT_INTERVAL_ENV) or "").strip() or str(DEFAULT_HEARTBEAT_INTERVAL)
        try:
            interval = float(raw)
            if interval <= 0:
                raise ValueError
        except ValueError:
            raise BannouError(
                f"{HEARTBEAT_INTERVAL_ENV}={raw!r} is not a positive number of seconds (e.g. 0.5 or 30)"
            ) from None
        return cls(app_id, services, url, interval, parse_mesh_endpoints(env.get(MESH_ENDPOINTS_ENV)))

    def start(self) -> NodeMessaging:
        """Subscribe to mappings first (so none is missed), then start heartbeating."""
        self.subscriber.start()
        try:
            self.heartbeats.start()
        except BaseException:
            self.subscriber.stop()
            raise
        return self

    def stop(self) -> None:
        """Heartbeat ``shutting_down``, then unsubscribe."""
        self.heartbeats.stop()
        self.subscriber.stop()
