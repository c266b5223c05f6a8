"""Heartbeat records in Redis and the heartbeat monitor.

Stored as bannou's orchestrator stores them: one key per app id, ``orch:hb:{appId}``, holding
the last ServiceHeartbeatEvent (plus when it was seen and since when the node is degraded),
with a TTL (90 s by default); and an index set ``orch:hb:_index`` of every app id ever seen, so
listing never needs KEYS or SCAN. An app id in the index whose key is gone has *expired*.
What a record means for a restart is ``messaging.restart_policy``'s rule.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..health import probes
from .broker import ConsumerThread, connect_broker, declare_exchange, require
from .contract import (
    DEFAULT_TTL,
    EXCHANGE,
    HEARTBEAT_TOPIC,
    INDEX_SUFFIX,
    KEY_PREFIX,
    HeartbeatRecord,
    MessagingError,
    parse_heartbeat,
)
from .restart_policy import DEFAULT_DEGRADED_THRESHOLD, RestartDecision, restart_decision

if TYPE_CHECKING:
    import redis

log = logging.getLogger("pytest_bannou.messaging.heartbeats")

__all__ = [  # the record, the policy and the Redis layout are re-exported for the store's users
    "DEFAULT_DEGRADED_THRESHOLD",
    "DEFAULT_TTL",
    "INDEX_SUFFIX",
    "KEY_PREFIX",
    "HeartbeatMonitor",
    "HeartbeatProbe",
    "HeartbeatRecord",
    "HeartbeatStore",
    "RedisHeartbeats",
    "RedisUnreachable",
    "RestartDecision",
    "connect_redis",
    "heartbeat_healthy",
    "restart_decision",
]
DEFAULT_REDIS_DEADLINE = 5.0


class RedisUnreachable(MessagingError):
    """No Redis connection could be made before the deadline."""


def connect_redis(
    url: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 6379,
    deadline: float = DEFAULT_REDIS_DEADLINE,
) -> redis.Redis:
    """A redis-py client that answered PING, retrying until ``deadline``; else ``RedisUnreachable``."""
    redis_mod = require("redis")  # pytest-bannou[messaging]

    target = url or f"redis://{host}:{port}/0"
    parts = urlsplit(target if "://" in target else f"redis://{target}")
    address = f"{parts.hostname or host}:{parts.port or port}"
    start = time.monotonic()
    attempts, last = 0, "no attempt made"
    while True:
        remaining = start + deadline - time.monotonic()
        attempts += 1
        timeout = max(0.2, min(remaining, 2.0))
        client = redis_mod.Redis.from_url(
            parts.geturl(), socket_connect_timeout=timeout, socket_timeout=max(timeout, 5.0)
        )
        try:
            client.ping()
            return client
        except redis_mod.RedisError as exc:
            last = f"{type(exc).__name__}: {exc}"
            client.close()
        if time.monotonic() + 0.2 >= start + deadline:
            break
        time.sleep(0.2)
    raise RedisUnreachable(
        f"cannot reach Redis at {address} ({parts.scheme}://{address}{parts.path}): {attempts} attempt(s)"
        f" over {time.monotonic() - start:.1f}s (deadline {deadline:g}s), last error: {last};"
        " start redis-server or point the Redis URL at a running one"
    )


# KEYS: record keys..., index key; ARGV: ttl ms, record values..., app ids... (same order)
_WRITE_LUA = """
local n = #KEYS - 1
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[i + 1], 'PX', ARGV[1])
  redis.call('SADD', KEYS[n + 1], ARGV[n + 1 + i])
end
return n
"""


class HeartbeatStore:
    """Heartbeat records in Redis: ``{prefix}{appId}`` with a TTL and the index set ``{prefix}_index``."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl: float = DEFAULT_TTL,
        prefix: str = KEY_PREFIX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"heartbeat TTL must be positive, got {ttl!r}")
        self.client = client
        self.ttl = ttl
        self.prefix = prefix
        self.index_key = prefix + INDEX_SUFFIX
        self.clock = clock
        self._write_script = client.register_script(_WRITE_LUA)

    def key(self, app_id: str) -> str:
        return self.prefix + app_id

    def write(
        self, events: Iterable[Mapping[str, Any]], received: float | None = None
    ) -> list[HeartbeatRecord]:
        """Store validated heartbeats (see ``write_raw``)."""
        return self.write_raw(((ev, None) for ev in events), received)

    def write_raw(
        self, items: Iterable[tuple[Mapping[str, Any], bytes | None]], received: float | None = None
    ) -> list[HeartbeatRecord]:
        """Store validated heartbeats given as (event, its JSON as received or None), in two round
        trips at most: one MGET of the previous records of degraded nodes (to carry
        ``degraded_since`` over) and one script call doing every SET PX and SADD. Only the last
        heartbeat of each app id in the batch is written; the received JSON is stored as is."""
        now = self.clock() if received is None else received
        latest: dict[str, tuple[Mapping[str, Any], bytes | None]] = {}
        degraded_runs: dict[str, bool] = {}  # app id -> every event of it in this batch was degraded
        for item in items:
            app = item[0]["appId"]
            latest.pop(app, None)
            latest[app] = item
            if item[0]["status"] == "degraded":
                degraded_runs.setdefault(app, True)
            else:
                degraded_runs[app] = False
        if not latest:
            return []
        # degraded since: carried over from Redis only if no non-degraded event broke the run
        need_prev = [a for a, (ev, _) in latest.items() if ev["status"] == "degraded" and degraded_runs[a]]
        previous: dict[str, float] = {}
        if need_prev:
            for app, raw in zip(need_prev, self.client.mget([self.key(a) for a in need_prev]), strict=True):
                if raw is None:
                    continue
                try:
                    rec = HeartbeatRecord.from_json(raw)
                except (ValueError, KeyError, TypeError):
                    continue
                if rec.status == "degraded":
                    previous[app] = rec.degraded_since if rec.degraded_since is not None else rec.last_seen
        records, keys, values = [], [], []
        seen = repr(float(now)).encode()
        for app, (ev, raw) in latest.items():
            since = previous.get(app, now) if ev["status"] == "degraded" else None
            records.append(HeartbeatRecord.from_event(ev, now, since))
            body = raw if raw is not None else json.dumps(ev, separators=(",", ":")).encode()
            keys.append(self.key(app))
            values.append(
                b'{"event":%s,"lastSeen":%s,"degradedSince":%s}'
                % (body, seen, b"null" if since is None else repr(float(since)).encode())
            )
        self._write_script(keys=[*keys, self.index_key], args=[int(self.ttl * 1000), *values, *latest])
        return records

    def latest(self, app_id: str) -> HeartbeatRecord | None:
        raw = self.client.get(self.key(app_id))
        return HeartbeatRecord.from_json(raw) if raw is not None else None

    def known(self) -> set[str]:
        """Every app id ever seen (from the index; no KEYS/SCAN)."""
        return {m.decode() if isinstance(m, bytes) else m for m in self.client.smembers(self.index_key)}

    def all(self) -> dict[str, HeartbeatRecord]:
        """The live (unexpired) record of every indexed app id."""
        apps = sorted(self.known())
        if not apps:
            return {}
        raws = self.client.mget([self.key(a) for a in apps])
        return {a: HeartbeatRecord.from_json(r) for a, r in zip(apps, raws, strict=True) if r is not None}

    def forget(self, app_id: str) -> None:
        """Drop an app id (record and index entry), e.g. after its node was removed on purpose."""
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(self.key(app_id))
        pipe.srem(self.index_key, app_id)
        pipe.execute()

    def should_restart(
        self, app_id: str, now: float | None = None, *, degraded_threshold: float = DEFAULT_DEGRADED_THRESHOLD
    ) -> RestartDecision:
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self.key(app_id))
        pipe.sismember(self.index_key, app_id)
        raw, known = pipe.execute()
        record = HeartbeatRecord.from_json(raw) if raw is not None else None
        return restart_decision(
            app_id,
            record,
            self.clock() if now is None else now,
            degraded_threshold=degraded_threshold,
            ttl=self.ttl,
            known=bool(known),
        )


def heartbeat_healthy(redis_client: redis.Redis, app_id: str, *, prefix: str = KEY_PREFIX) -> bool:
    """Readiness probe "heartbeat healthy": the node's unexpired heartbeat says ``healthy``."""
    raw = redis_client.get(prefix + app_id)
    if raw is None:
        return False
    try:
        return HeartbeatRecord.from_json(raw).status == "healthy"
    except (ValueError, KeyError, TypeError):
        return False


class HeartbeatMonitor(ConsumerThread):
    """Consumes ``bannou.service-heartbeat`` from exchange ``bannou`` and stores the heartbeats in
    Redis like bannou's orchestrator. Up to ``prefetch`` messages are in flight; whatever has
    arrived is written with one Redis call (``HeartbeatStore.write_raw``) and acked with one
    multiple ack; malformed messages are logged, counted and dropped. It reconnects when the
    broker drops it (unacked heartbeats go back to a named queue, or are superseded by the next
    beat). Runs in a daemon thread between ``start()`` and ``stop()``; ``start()`` returns once
    the queue is bound, so no heartbeat published afterwards is missed.
    """

    what = "heartbeat monitor"
    log = log

    def __init__(
        self,
        amqp_url: str,
        redis_client: redis.Redis,
        *,
        ttl: float = DEFAULT_TTL,
        degraded_threshold: float = DEFAULT_DEGRADED_THRESHOLD,
        prefix: str = KEY_PREFIX,
        prefetch: int = 2000,
        deadline: float = 10.0,
        clock: Callable[[], float] = time.time,
        queue: str | None = None,
    ) -> None:
        """``queue``: consume from this named queue (declared, bound, kept after stop, so several
        monitors can share the work or a backlog can wait for a monitor); by default an exclusive
        queue that lives as long as the monitor."""
        super().__init__(amqp_url, deadline)
        self.queue = queue
        self.store = HeartbeatStore(redis_client, ttl=ttl, prefix=prefix, clock=clock)
        self.degraded_threshold = degraded_threshold
        self.prefetch = prefetch
        self.processed = 0  # valid heartbeats stored
        self.malformed = 0  # messages dropped as malformed
        self._channel: Any = None
        self._batch: list[tuple[int, bytes]] = []  # (delivery tag, body) arrived, not yet handled
        self._seen = threading.Condition()
        self._last: dict[str, HeartbeatRecord] = {}

    # -- queries -----------------------------------------------------------------------------

    def latest(self, app_id: str) -> HeartbeatRecord | None:
        return self.store.latest(app_id)

    def all(self) -> dict[str, HeartbeatRecord]:
        return self.store.all()

    def should_restart(self, app_id: str, now: float | None = None) -> RestartDecision:
        return self.store.should_restart(app_id, now, degraded_threshold=self.degraded_threshold)

    def wait_for(
        self,
        app_id: str,
        status: str | None = "healthy",
        timeout: float = 10.0,
        *,
        after: float | None = None,
    ) -> HeartbeatRecord:
        """Block until the monitor stores a heartbeat of ``app_id`` (with ``status``, and received
        after ``after`` when given); ``MessagingError`` at the deadline."""
        end = time.monotonic() + timeout
        with self._seen:
            while True:
                rec = self._last.get(app_id)
                if (
                    rec
                    and (status is None or rec.status == status)
                    and (after is None or rec.last_seen >= after)
                ):
                    return rec
                remaining = end - time.monotonic()
                if remaining <= 0 or not self.running:
                    break
                self._seen.wait(min(remaining, 0.5))
        seen = f"last status {rec.status!r}" if rec else "no heartbeat at all"
        raise MessagingError(
            f"no {status or 'any'} heartbeat from {app_id!r} within {timeout:g}s ({seen}; heartbeats are read"
            f" from {HEARTBEAT_TOPIC!r} on exchange {EXCHANGE!r}); check that the node publishes them"
        )

    # -- consumer thread -----------------------------------------------------------------------

    def _connect(self) -> Any:
        conn = connect_broker(self.amqp_url, deadline=self.deadline, heartbeat=30)
        channel = conn.channel()
        declare_exchange(channel)
        if self.queue:
            queue = channel.queue_declare(self.queue).method.queue
        else:
            queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
        channel.queue_bind(queue, EXCHANGE, routing_key=HEARTBEAT_TOPIC)
        channel.basic_qos(prefetch_count=self.prefetch)
        batch: list[tuple[int, bytes]] = []
        channel.basic_consume(queue, lambda _ch, m, _p, body: batch.append((m.delivery_tag, body)))
        self._channel, self._batch = channel, batch
        return conn

    def _pump(self, conn: Any) -> None:
        conn.process_data_events(time_limit=0.05)
        if self._batch:
            taken = self._batch[:]
            self._batch.clear()
            self._handle(self._channel, taken)

    def _stopped(self) -> None:
        with self._seen:
            self._seen.notify_all()

    def _handle(self, channel: Any, taken: list[tuple[int, bytes]]) -> None:
        import redis as redis_mod

        events = []
        for _tag, body in taken:
            try:
                events.append((parse_heartbeat(body), body))
            except ValueError as exc:
                self.malformed += 1
                log.warning("ignoring malformed heartbeat: %s; body: %.200r", exc, body)
        last_tag = taken[-1][0]
        try:
            records = self.store.write_raw(events)
        except redis_mod.RedisError as exc:
            log.error("could not store %d heartbeat(s) in Redis, requeued: %r", len(events), exc)
            channel.basic_nack(last_tag, multiple=True, requeue=True)
            self._stop.wait(0.5)
            return
        channel.basic_ack(last_tag, multiple=True)
        self.processed += len(events)
        with self._seen:
            for rec in records:
                self._last[rec.app_id] = rec
            self._seen.notify_all()


@dataclass(frozen=True)
class RedisHeartbeats:
    """``health.HeartbeatSource`` over the records in Redis (``{prefix}{appId}``)."""

    client: Any  # redis.Redis
    prefix: str = KEY_PREFIX

    def describe(self) -> str:
        return f"Redis ({self.prefix}{{appId}})"

    def healthy(self, app_id: str) -> bool:
        return heartbeat_healthy(self.client, app_id, prefix=self.prefix)


def HeartbeatProbe(client: Any, prefix: str = KEY_PREFIX) -> probes.HeartbeatProbe:
    """The ``health`` probe for healthcheck kind ``heartbeat`` on the records in Redis: register
    it with ``health.register_probe("heartbeat", lambda node: HeartbeatProbe(client))``."""
    return probes.HeartbeatProbe(RedisHeartbeats(client, prefix))
