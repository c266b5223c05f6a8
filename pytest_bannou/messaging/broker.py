"""The broker side of bannou's messaging: the pika connection, publishing, consuming.

Everything goes to bannou's durable topic exchange (``contract.EXCHANGE``); publishing waits for
the broker's confirms; ``ConsumerThread`` runs a consumer in a daemon thread and reconnects
whenever the broker drops it. pika is imported only when a connection is made.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Self

from ..topology.model import Topology
from .contract import (
    CONFIGURATION_TOPIC,
    DEFAULT_AMQP_PORT,
    DEPLOYMENT_TOPIC,
    EXCHANGE,
    EXCHANGE_TYPE,
    MAPPINGS_TOPIC,
    SERVICE_LIFECYCLE_TOPIC,
    BrokerUnreachable,
    MessagingError,
    address_of,
    broker_url,
    configuration_changed_event,
    deployment_event,
    mappings_event,
    redact,
    service_restart_event,
)

if TYPE_CHECKING:
    import pika
    import pika.adapters.blocking_connection

log = logging.getLogger("pytest_bannou.messaging.broker")

DEFAULT_CONNECT_DEADLINE = 10.0


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

    def publish_service_restart(self, service_name: str, reason: str, **fields: Any) -> dict[str, Any]:
        """Publish a ServiceRestartEvent (see ``service_restart_event``); returns the event sent."""
        event = service_restart_event(service_name, reason, **fields)
        self.publish(SERVICE_LIFECYCLE_TOPIC, event)
        return event

    def publish_configuration_changed(
        self, config_version: int, changed_keys: Iterable[str]
    ) -> dict[str, Any]:
        """Publish a ConfigurationChangedEvent; returns the event sent."""
        event = configuration_changed_event(config_version, changed_keys)
        self.publish(CONFIGURATION_TOPIC, event)
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
