"""Fixtures of the messaging tests: private redis-server / rabbitmq-server (see
tests/support/messaging_servers.py), a
clean Redis client per test, and a raw AMQP consumer bound to exchange ``bannou``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from pytest_bannou.messaging.heartbeats import connect_redis
from tests.support import messaging_servers as servers
from tests.support.messaging_servers import Consumer, RabbitMQServer, RedisServer

rabbitmq_server, redis_server = servers.rabbitmq_server, servers.redis_server  # this directory's fixtures


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
