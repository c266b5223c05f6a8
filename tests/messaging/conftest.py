"""Fixtures of the messaging tests: private redis-server / rabbitmq-server (see servers.py), a
clean Redis client per test, and a raw AMQP consumer bound to exchange ``bannou``."""

from __future__ import annotations

import importlib.util
import json
import queue
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_bannou.events import EXCHANGE, connect_broker, declare_exchange
from pytest_bannou.heartbeats import connect_redis


def _load_servers():
    """servers.py under a unique module name: a plain ``import servers`` would collide with
    other test directories' modules of that name (tests/ has no packages)."""
    name = "bannou_messaging_servers"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("servers.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_servers = _load_servers()
RabbitMQServer, RedisServer = _servers.RabbitMQServer, _servers.RedisServer
rabbitmq_server, redis_server = _servers.rabbitmq_server, _servers.redis_server


@pytest.fixture
def redis_client(redis_server: RedisServer):
    client = connect_redis(redis_server.url)
    client.flushdb()
    yield client
    client.close()


class Consumer:
    """A real consumer: an exclusive queue bound to ``bannou`` with some routing keys, pumped by
    a thread; received messages land in ``messages`` as (routing key, parsed body)."""

    def __init__(self, url: str, routing_keys: list[str]) -> None:
        self.url = url
        self.routing_keys = routing_keys
        self.messages: queue.Queue[tuple[str, dict]] = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Consumer:
        self._thread.start()
        assert self._ready.wait(30), "consumer did not bind its queue"
        return self

    def _run(self) -> None:
        conn = connect_broker(self.url, deadline=10)
        ch = conn.channel()
        declare_exchange(ch)
        q = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        for key in self.routing_keys:
            ch.queue_bind(q, EXCHANGE, routing_key=key)
        ch.basic_consume(
            q, lambda _c, m, _p, body: self.messages.put((m.routing_key, json.loads(body))), auto_ack=True
        )
        self._ready.set()
        while not self._stop.is_set():
            conn.process_data_events(time_limit=0.05)
        conn.close()

    def get(self, timeout: float = 10.0) -> tuple[str, dict]:
        return self.messages.get(timeout=timeout)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def consumer(rabbitmq_server: RabbitMQServer) -> Iterator:
    started: list[Consumer] = []

    def make(*routing_keys: str) -> Consumer:
        c = Consumer(rabbitmq_server.url, list(routing_keys)).start()
        started.append(c)
        return c

    yield make
    for c in started:
        c.stop()


@pytest.fixture
def app_id() -> str:
    """A fresh app id per test, so tests sharing the broker never see each other's heartbeats."""
    return f"node-{uuid.uuid4().hex[:8]}"
