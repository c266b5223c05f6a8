"""Fixtures of the messaging tests: private redis-server / rabbitmq-server (see servers.py), a
clean Redis client per test, and a raw AMQP consumer bound to exchange ``bannou``."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_bannou.messaging.heartbeats import connect_redis


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
Consumer = _servers.Consumer


@pytest.fixture
def redis_client(redis_server: RedisServer):
    client = connect_redis(redis_server.url)
    client.flushdb()
    yield client
    client.close()


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
