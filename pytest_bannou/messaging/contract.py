"""bannou's messaging contract over RabbitMQ (layer 5): event shapes, broker connection, publishing.

Shapes follow bannou's schemas (../shared/upstream-schemas): ``FullServiceMappingsEvent`` and
``ServiceHeartbeatEvent`` (common-events.yaml), ``DeploymentEvent`` (orchestrator-events.yaml).
Everything goes to the durable topic exchange ``bannou``; the routing key is the topic bannou's
schemas name (``x-event-publications``):

- ``bannou.full-service-mappings``: FullServiceMappingsEvent, after every deploy/transition/change;
- ``bannou.deployment-events``: DeploymentEvent (started, completed, failed, topology-changed);
- ``bannou.service-heartbeat``: ServiceHeartbeatEvent, published by nodes, consumed by
  ``pytest_bannou.messaging.heartbeats``.

Parsing functions raise ``ValueError`` with the reason, so consumers can log and drop a malformed
message without dying.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote, urlsplit

from pytest_bannou.errors import BannouError

if TYPE_CHECKING:
    import pika
    import pika.adapters.blocking_connection

    from pytest_bannou.topology.model import Topology

log = logging.getLogger("pytest_bannou.messaging.contract")

EXCHANGE = "bannou"
EXCHANGE_TYPE = "topic"
HEARTBEAT_TOPIC = "bannou.service-heartbeat"
MAPPINGS_TOPIC = "bannou.full-service-mappings"
DEPLOYMENT_TOPIC = "bannou.deployment-events"

HEARTBEAT_EVENT_NAME = "service.heartbeat"
MAPPINGS_EVENT_NAME = "orchestrator.full_service_mappings"

INSTANCE_STATUSES = ("healthy", "degraded", "overloaded", "shutting_down", "unavailable")
DEPLOYMENT_ACTIONS = ("started", "completed", "failed", "topology-changed")
# bannou's BackendType enum; other backends (local) are sent as null, as the schema allows
BACKEND_TYPES = ("kubernetes", "portainer", "swarm", "compose")

DEFAULT_AMQP_PORT = 5672
DEFAULT_CONNECT_DEADLINE = 10.0


class MessagingError(BannouError):
    """RabbitMQ or Redis could not be used; the message names the address and what was tried."""


class BrokerUnreachable(MessagingError):
    """No AMQP connection could be opened before the deadline."""


# --------------------------------------------------------------------------------------------
# time and ids


def now_iso(ts: float | None = None) -> str:
    """ISO 8601 UTC with a ``Z``, as bannou's ``date-time`` fields carry it."""
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def parse_iso(value: str) -> float:
    """Epoch seconds of an ISO 8601 timestamp (``Z`` or offset; naive means UTC)."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _base(event_name: str | None) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if event_name is not None:
        d["eventName"] = event_name
    d["eventId"] = str(uuid.uuid4())
    d["timestamp"] = now_iso()
    return d


# --------------------------------------------------------------------------------------------
# event builders


def mappings_event(
    topology: Topology | None,
    version: int,
    source_instance_id: str | None,
    *,
    mappings: Mapping[str, str] | None = None,
    default_app_id: str | None = None,
) -> dict[str, Any]:
    """A FullServiceMappingsEvent for ``topology`` (its ``mappings`` and ``default_app_id``);
    ``mappings``/``default_app_id`` override the topology's (or stand in when it is None)."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"mappings version must be a non-negative integer, got {version!r}")
    table = dict(mappings if mappings is not None else (topology.mappings if topology else {}))
    default = default_app_id or (topology.default_app_id if topology else None) or "bannou"
    event = _base(MAPPINGS_EVENT_NAME)
    event.update(
        {
            "mappings": {str(k): str(v) for k, v in sorted(table.items())},
            "defaultAppId": default,
            "version": version,
            "sourceInstanceId": source_instance_id,
            "totalServices": len(table),
        }
    )
    return event


def deployment_event(
    action: str,
    deployment_id: str,
    *,
    preset: str | None = None,
    backend: str | None = None,
    changes: Iterable[str] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """A DeploymentEvent (topic ``bannou.deployment-events``). ``backend`` outside bannou's
    BackendType enum (e.g. ``local``) is sent as null."""
    if action not in DEPLOYMENT_ACTIONS:
        raise ValueError(f"deployment action {action!r} is not one of {', '.join(DEPLOYMENT_ACTIONS)}")
    if not deployment_id:
        raise ValueError("deployment_id must be a non-empty string")
    event = _base(None)  # DeploymentEvent has no eventName in bannou's schema
    event.update(
        {
            "action": action,
            "deploymentId": deployment_id,
            "preset": preset,
            "backend": backend if backend in BACKEND_TYPES else None,
            "changes": list(changes) if changes is not None else None,
            "error": error,
        }
    )
    return event


def service_status_for(instance_status: str) -> str:
    """The per-service status matching an instance status (services have no ``shutting_down``
    or ``overloaded`` of their own)."""
    return {"shutting_down": "unavailable", "overloaded": "degraded"}.get(instance_status, instance_status)


def service_status(name: str, status: str = "healthy", *, service_id: str | None = None) -> dict[str, Any]:
    """One ServiceStatus entry of a heartbeat."""
    return {"serviceId": service_id or str(uuid.uuid4()), "serviceName": name, "status": status}


def heartbeat_event(
    app_id: str,
    status: str,
    services: Sequence[str | Mapping[str, Any]],
    *,
    service_id: str | None = None,
    capacity: Mapping[str, Any] | None = None,
    issues: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ServiceHeartbeatEvent. ``services`` are names (status follows the instance's, with
    ``shutting_down``/``overloaded`` mapped to bannou's service-level words) or ServiceStatus dicts."""
    if status not in INSTANCE_STATUSES:
        raise ValueError(f"heartbeat status {status!r} is not one of {', '.join(INSTANCE_STATUSES)}")
    per_service = service_status_for(status)
    event = _base(HEARTBEAT_EVENT_NAME)
    event.update(
        {
            "serviceId": service_id or str(uuid.uuid4()),
            "appId": app_id,
            "status": status,
            "services": [service_status(s, per_service) if isinstance(s, str) else dict(s) for s in services],
            "capacity": dict(capacity) if capacity is not None else None,
            "issues": list(issues) if issues is not None else None,
        }
    )
    if metadata is not None:
        event["metadata"] = dict(metadata)
    return event


# --------------------------------------------------------------------------------------------
# parsing (consumers)


_decode = json.JSONDecoder().decode


def _load(body: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(body, (bytes, str)):
        return dict(body)
    try:
        # decoding first skips json's encoding detection (the monitor parses thousands a second)
        data = _decode(body.decode() if isinstance(body, bytes) else body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    return data


def parse_heartbeat(body: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """Validate a ServiceHeartbeatEvent; ``ValueError`` says what is wrong."""
    data = _load(body)
    app_id = data.get("appId")
    if not isinstance(app_id, str) or not app_id:
        raise ValueError("heartbeat without a string appId")
    if app_id.startswith("_"):
        raise ValueError(f"heartbeat appId {app_id!r} starts with '_' (reserved for index keys)")
    status = data.get("status")
    if status not in INSTANCE_STATUSES:
        raise ValueError(
            f"heartbeat from {app_id!r}: status {status!r} not in {', '.join(INSTANCE_STATUSES)}"
        )
    services = data.get("services")
    if not isinstance(services, list):
        raise ValueError(f"heartbeat from {app_id!r}: services must be a list")
    for s in services:
        if not isinstance(s, dict) or not isinstance(s.get("serviceName"), str):
            raise ValueError(f"heartbeat from {app_id!r}: each service needs a serviceName")
    issues = data.get("issues")
    if issues is not None and not (isinstance(issues, list) and all(isinstance(i, str) for i in issues)):
        raise ValueError(f"heartbeat from {app_id!r}: issues must be a list of strings or null")
    capacity = data.get("capacity")
    if capacity is not None and not isinstance(capacity, dict):
        raise ValueError(f"heartbeat from {app_id!r}: capacity must be an object or null")
    return data


def parse_mappings(body: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """Validate a FullServiceMappingsEvent; ``ValueError`` says what is wrong."""
    data = _load(body)
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"mappings event without an integer version (got {version!r})")
    mappings = data.get("mappings")
    if not isinstance(mappings, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in mappings.items()
    ):
        raise ValueError("mappings event: mappings must be an object of service -> non-empty appId")
    default = data.get("defaultAppId")
    if default is not None and not isinstance(default, str):
        raise ValueError("mappings event: defaultAppId must be a string or null")
    return data


# --------------------------------------------------------------------------------------------
# connection


def broker_url(url: str | None = None, *, host: str = "127.0.0.1", port: int = DEFAULT_AMQP_PORT) -> str:
    """An ``amqp://`` URL from a URL, a ``host:port`` string, or host and port."""
    if url:
        if "://" in url:
            return url
        h, _, p = url.rpartition(":")
        if h and p.isdigit():
            return f"amqp://guest:guest@{h}:{p}/%2F"
        return f"amqp://guest:guest@{url}:{port}/%2F"
    return f"amqp://guest:guest@{host}:{port}/{quote('/', safe='')}"


def redact(url: str) -> str:
    """The URL without its password, for error messages and logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def address_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or DEFAULT_AMQP_PORT}"


def connect_broker(
    url: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_AMQP_PORT,
    deadline: float = DEFAULT_CONNECT_DEADLINE,
    heartbeat: int = 0,
) -> pika.BlockingConnection:
    """Open a blocking AMQP connection, retrying until ``deadline`` seconds have passed.

    ``heartbeat=0`` (the default) suits publishers that stay idle between events; consumers that
    pump the connection can ask for AMQP heartbeats. Raises ``BrokerUnreachable``.
    """
    require("pika")
    import pika
    import pika.exceptions

    target = broker_url(url, host=host, port=port)
    try:
        base = pika.URLParameters(target)
    except Exception as exc:
        raise BrokerUnreachable(f"invalid RabbitMQ URL {redact(target)!r}: {exc}") from None
    start = time.monotonic()
    end = start + deadline
    attempts = 0
    last = "no attempt made"
    while True:
        remaining = end - time.monotonic()
        if remaining <= 0 and attempts:
            break
        attempts += 1
        params = pika.ConnectionParameters(
            host=base.host,
            port=base.port,
            virtual_host=base.virtual_host,
            credentials=base.credentials,
            heartbeat=heartbeat,
            connection_attempts=1,
            socket_timeout=max(0.2, min(remaining, 2.0)),
            stack_timeout=max(0.5, min(remaining, 5.0)),
            blocked_connection_timeout=30,
        )
        try:
            return pika.BlockingConnection(params)
        except pika.exceptions.ProbableAuthenticationError as exc:
            raise BrokerUnreachable(
                f"RabbitMQ at {address_of(target)} ({redact(target)}) refused the credentials: {exc!r};"
                " fix the user/password in the AMQP URL"
            ) from None
        except (pika.exceptions.AMQPError, OSError) as exc:
            last = _describe(exc)
        if time.monotonic() + 0.2 >= end:
            break
        time.sleep(0.2)
    raise BrokerUnreachable(
        f"cannot reach RabbitMQ at {address_of(target)} ({redact(target)}): {attempts} connection"
        f" attempt(s) over {time.monotonic() - start:.1f}s (deadline {deadline:g}s), last error: {last};"
        " start the broker or point the AMQP URL at a running one"
    )


def require(module: str) -> Any:
    """Import an optional client library or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MessagingError(
            f"the Python package {module!r} is needed to talk to RabbitMQ/Redis;"
            " install it with: pip install 'pytest-bannou[messaging]'"
        ) from None


def _describe(exc: BaseException) -> str:
    text = repr(exc)
    inner = getattr(exc, "args", ())
    for arg in inner:
        if isinstance(arg, BaseException):
            text = f"{type(exc).__name__}({arg!r})"
    return text


def declare_exchange(channel: pika.adapters.blocking_connection.BlockingChannel) -> None:
    """bannou's exchange: durable, topic."""
    channel.exchange_declare(exchange=EXCHANGE, exchange_type=EXCHANGE_TYPE, durable=True)


# --------------------------------------------------------------------------------------------
# publishing


class EventPublisher:
    """Publishes bannou events on exchange ``bannou`` with publisher confirms.

    Mapping versions strictly increase, also across publishers in other processes: the next
    version is ``max(last + 1, now in milliseconds)`` (bannou's consumers reject any version
    <= the one they hold, so a new session must not restart at 1). Thread-safe.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_AMQP_PORT,
        deadline: float = DEFAULT_CONNECT_DEADLINE,
        source_instance_id: str | None = None,
        last_version: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = broker_url(url, host=host, port=port)
        self.deadline = deadline
        self.source_instance_id = source_instance_id or str(uuid.uuid4())
        self._version = last_version
        self._clock = clock
        self._lock = threading.RLock()  # publish_mappings holds it across version + publish
        self._conn: pika.BlockingConnection | None = None
        self._channel: pika.adapters.blocking_connection.BlockingChannel | None = None
        self._open()

    @property
    def version(self) -> int:
        """The last version published (``last_version`` before the first)."""
        return self._version

    def _open(self) -> None:
        self._conn = connect_broker(self.url, deadline=self.deadline)
        self._channel = self._conn.channel()
        declare_exchange(self._channel)
        self._channel.confirm_delivery()

    def next_version(self) -> int:
        return max(self._version + 1, int(self._clock() * 1000))

    def publish(self, routing_key: str, event: Mapping[str, Any]) -> None:
        """Publish one event (JSON) and wait for the broker's confirm; reconnects once."""
        import pika
        import pika.exceptions

        body = json.dumps(event, separators=(",", ":")).encode()
        props = pika.BasicProperties(
            content_type="application/json", message_id=str(event.get("eventId", "")), delivery_mode=2
        )
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None or self._conn.is_closed:
                        self._open()
                    assert self._channel is not None
                    self._channel.basic_publish(EXCHANGE, routing_key, body, props)
                    return
                except BrokerUnreachable:
                    raise
                except (pika.exceptions.AMQPError, OSError) as exc:
                    self._drop()
                    if attempt == 2:
                        raise MessagingError(
                            f"publishing {routing_key} to RabbitMQ at {address_of(self.url)} failed twice"
                            f" (reconnected once): {_describe(exc)}"
                        ) from None

    def publish_mappings(
        self,
        topology: Topology | None = None,
        *,
        mappings: Mapping[str, str] | None = None,
        default_app_id: str | None = None,
    ) -> dict[str, Any]:
        """Publish a FullServiceMappingsEvent with the next version; returns the event sent."""
        with self._lock:  # versions reach the broker in the order they were taken
            version = self.next_version()
            event = mappings_event(
                topology, version, self.source_instance_id, mappings=mappings, default_app_id=default_app_id
            )
            self.publish(MAPPINGS_TOPIC, event)
            self._version = version
        return event

    def publish_deployment(self, action: str, deployment_id: str, **fields: Any) -> dict[str, Any]:
        """Publish a DeploymentEvent (see ``deployment_event``); returns the event sent."""
        event = deployment_event(action, deployment_id, **fields)
        self.publish(DEPLOYMENT_TOPIC, event)
        return event

    def _drop(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None and conn.is_open:
            try:
                conn.close()
            except Exception:
                log.debug("closing a broken AMQP connection failed", exc_info=True)

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ConsumerThread:
    """Consumes from the broker in a daemon thread between ``start()`` and ``stop()`` (pika is
    used by that thread only): ``start`` returns once ``_connect`` has bound the queue (or raises
    its error, within the deadline); the thread then calls ``_pump`` until stopped, reconnecting
    whenever the broker drops it. Subclasses name themselves (``what``, used in thread names and
    messages) and implement ``_connect`` and ``_pump``."""

    what = "consumer"
    log = log

    def __init__(self, amqp_url: str, deadline: float) -> None:
        self.amqp_url = broker_url(amqp_url)
        self.deadline = deadline
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        if self.running:
            return self
        self._stop.clear()
        self._ready.clear()
        self._error = None
        name = "bannou-" + self.what.replace(" ", "-")
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        if not self._ready.wait(self.deadline + 5.0):
            self.stop()
            raise MessagingError(f"{self.what} did not start within {self.deadline + 5.0:g}s")
        if self._error is not None:
            self._thread.join(5.0)
            raise self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _connect(self) -> Any:
        """Connect, declare and bind, start consuming; the connection."""
        raise NotImplementedError

    def _pump(self, conn: Any) -> None:
        """Process what arrived for a moment (AMQP errors make the thread reconnect)."""
        raise NotImplementedError

    def _stopped(self) -> None:
        """Called by the thread as it ends, after the connection is closed."""

    def _run(self) -> None:
        import pika.exceptions

        try:
            conn = self._connect()
        except BaseException as exc:  # handed to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                try:
                    self._pump(conn)
                except pika.exceptions.AMQPError as exc:
                    self.log.error("%s lost RabbitMQ at %s: %r; reconnecting", self.what, self.amqp_url, exc)
                    _close_quietly(conn)
                    while not self._stop.is_set():
                        try:
                            conn = self._connect()
                            break
                        except (MessagingError, pika.exceptions.AMQPError, OSError) as again:
                            self.log.error("%s: %s", self.what, again)
                            self._stop.wait(0.5)
        finally:
            _close_quietly(conn)
            self._stopped()


def _close_quietly(conn: Any) -> None:
    try:
        if conn.is_open:
            conn.close()
    except Exception:
        log.debug("closing an AMQP connection failed", exc_info=True)
