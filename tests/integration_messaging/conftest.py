"""Environments with real redis-server and rabbitmq-server as infrastructure nodes (local backend).

RabbitMQ takes seconds to start here, so one environment (``msg_env``, module-scoped) serves most
tests; it is reached through ``EnvironmentManager`` directly, the way the plugin drives it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_bannou.environment.environment import Environment
from pytest_bannou.environment.manager import EnvironmentManager
from pytest_bannou.environment.runs import make_options
from pytest_bannou.messaging.session import EnvMessaging, MessagingSettings
from pytest_bannou.preset import PresetLibrary
from tests.support import messaging_servers as servers
from tests.support.messaging_presets import write_presets

redis_server = servers.redis_server  # this directory's fixture
Consumer = servers.Consumer

SERVERS_MISSING = [b for b in ("redis-server", "epmd") if shutil.which(b) is None]
if not Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() and shutil.which("rabbitmq-server") is None:
    SERVERS_MISSING.append("rabbitmq-server")


@pytest.fixture(scope="module")
def presets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_presets(tmp_path_factory.mktemp("presets"))


@pytest.fixture(scope="module")
def library(presets_dir: Path) -> PresetLibrary:
    return PresetLibrary([presets_dir])


TTL = 3.0  # short, so an expired heartbeat can be seen in a test


@pytest.fixture(scope="session")
def infra_servers() -> None:
    if SERVERS_MISSING:
        pytest.skip(f"needs {', '.join(SERVERS_MISSING)}: apt-get install redis-server rabbitmq-server")


@pytest.fixture(scope="module")
def manager(infra_servers: None) -> Iterator[EnvironmentManager]:
    options = make_options(ready_timeout=120)
    settings = MessagingSettings(heartbeat_interval=0.3, ttl=TTL)
    m = EnvironmentManager("local", options, messaging=EnvMessaging(settings, options.workdir))
    yield m
    m.teardown(remove_workdir=True)


@pytest.fixture
def msg_env(manager: EnvironmentManager, library: PresetLibrary) -> Environment:
    """The module's msg-split environment (deployed once; reached again by a transition if a
    test moved the session to another preset)."""
    return manager.activate("msg-split", library.resolve("msg-split"))


@pytest.fixture
def consume() -> Iterator:
    """``consume(url, *routing_keys)`` -> a started ``Consumer``, stopped after the test."""
    started: list[Consumer] = []

    def make(url: str, *routing_keys: str) -> Consumer:
        c = Consumer(url, routing_keys).start()
        started.append(c)
        return c

    yield make
    for c in started:
        c.stop()
