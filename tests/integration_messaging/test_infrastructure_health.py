"""``bannou_env.infrastructure_health()`` and ``bannou-env status`` (issue 15, point 5): Redis
PING, a RabbitMQ connection and a MySQL login against real servers on the local backend, each
with its latency; a stopped server is reported with its error."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_bannou.backends.mysql_server import server_binary
from pytest_bannou.environment.environment import Environment
from pytest_bannou.environment.manager import EnvironmentManager
from pytest_bannou.environment.runs import make_options, run_directory
from pytest_bannou.health.infrastructure import InfraHealth
from pytest_bannou.preset import PresetLibrary
from tests.support.bannou_pytester import BannouPytester

from .conftest import SERVERS_MISSING

MYSQL_PASSWORD = "health-pw-5e0b1d"
PRESET = f"""
name: infra-health
description: a reference node with redis, rabbitmq and mysql
topology:
  nodes:
    - name: main
      appId: bannou
  infrastructure:
    redis: {{}}
    rabbitmq: {{}}
    mysql:
      environment:
        MYSQL_ROOT_PASSWORD: {MYSQL_PASSWORD}-root
        MYSQL_DATABASE: bannou
        MYSQL_USER: guest
        MYSQL_PASSWORD: {MYSQL_PASSWORD}
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(SERVERS_MISSING) or server_binary() is None,
        reason="needs redis-server, rabbitmq-server and mariadb-server (apt-get install them)",
    ),
]


@pytest.fixture(scope="module")
def health_presets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("health-presets")
    (d / "infra-health.yaml").write_text(PRESET)
    return d


@pytest.fixture(scope="module")
def env(health_presets: Path) -> Iterator[Environment]:
    manager = EnvironmentManager("local", make_options(ready_timeout=180))
    try:
        yield manager.activate("infra-health", PresetLibrary([health_presets]).resolve("infra-health"))
    finally:
        manager.teardown(remove_workdir=True)


def by_node(results: list[InfraHealth]) -> dict[str, InfraHealth]:
    return {h.node: h for h in results}


def test_every_infrastructure_node_answers_with_its_latency(env: Environment) -> None:
    health = by_node(env.infrastructure_health())
    assert set(health) == {"redis", "rabbitmq", "mysql"}
    assert [(h.kind, h.check) for h in health.values()] == [
        ("redis", "PING"),
        ("rabbitmq", "AMQP connection"),
        ("mysql", "login"),
    ]
    for h in health.values():
        assert h.ok and h.error == "" and h.latency_ms is not None and h.latency_ms > 0, h
        assert re.fullmatch(r"127\.0\.0\.1:\d+", h.address), h
    assert "logged in as 'guest' to 'bannou'" in health["mysql"].detail
    assert json.loads(json.dumps([h.to_json() for h in health.values()]))[0]["node"] == "redis"


def test_a_stopped_server_is_reported_with_its_error(env: Environment) -> None:
    env.kill("mysql")
    try:
        health = by_node(env.infrastructure_health(timeout=3.0))
        assert not health["mysql"].ok and health["mysql"].latency_ms is None
        assert "login as 'guest' failed: (2003) Can't connect" in health["mysql"].error, health["mysql"]
        assert "mysql (mysql) FAILED login 127.0.0.1:" in health["mysql"].line()
        assert health["redis"].ok and health["rabbitmq"].ok  # the others are unaffected
    finally:
        env.restart("mysql")  # same datadir: the server comes back with its users
    assert by_node(env.infrastructure_health())["mysql"].ok


def test_a_refused_login_is_an_error_without_the_password(env: Environment) -> None:
    from pytest_bannou.health.infrastructure import InfraTarget, check

    ep = env.endpoint("mysql", 3306)
    wrong = {"MYSQL_USER": "guest", "MYSQL_PASSWORD": MYSQL_PASSWORD + "-wrong", "MYSQL_DATABASE": "bannou"}
    h = check(InfraTarget("mysql", "mysql", ep.host, ep.port, wrong))
    assert not h.ok and "(1045) Access denied for user 'guest'" in h.error, h
    assert MYSQL_PASSWORD not in h.error


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_bannou.cli", *args], capture_output=True, text=True, timeout=300
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_bannou_env_status_shows_the_infrastructure_health_of_a_kept_run(health_presets: Path) -> None:
    out = cli("deploy", "infra-health", "--presets-dir", str(health_presets), "--ready-timeout", "180").stdout
    run_id = re.search(r"run id: (\S+)", out).group(1)
    try:
        status = cli("status", "--run-id", run_id).stdout
        block = status.split("  infrastructure:\n", 1)[1].split("  configuration versions:", 1)[0]
        lines = textwrap.dedent(block).splitlines()
        assert [line.split(" ")[:3] for line in lines] == [
            ["redis", "(redis)", "ok"],
            ["rabbitmq", "(rabbitmq)", "ok"],
            ["mysql", "(mysql)", "ok"],
        ], status
        assert "unreachable" not in status  # no HTTP /health asked of Redis, RabbitMQ, MySQL
        _stop_node(run_id, "mysql")
        status = cli("status", "--run-id", run_id).stdout
        failed = r"mysql \(mysql\) FAILED login 127\.0\.0\.1:\d+: mysql .*Can't connect"
        assert re.search(failed, status), status
        assert MYSQL_PASSWORD not in status
    finally:
        cli("clean", "--run-id", run_id, "--backend", "local", check=False)
    assert not run_directory(run_id).exists()


def _stop_node(run_id: str, node: str) -> None:
    """SIGKILL the process group of a kept run's node, found by pid in the run's state file."""
    (state,) = (run_directory(run_id) / "local").glob("state*.json")
    (replica,) = [r for r in json.loads(state.read_text())["replicas"] if r["node"] == node]
    os.killpg(replica["pgid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(replica["pgid"], 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"process group {replica['pgid']} of {node} is still alive")


def test_a_builtin_preset_with_bannou_infra_deploys_mysql_with_bannous_credentials(
    bannou_pytester: BannouPytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BANNOU_INFRA", "true")
    bannou_pytester.pytester.makepyfile(
        """
        def test_infrastructure(bannou_env):
            mysql = bannou_env.topology.node("mysql").environment
            assert (mysql["MYSQL_USER"], mysql["MYSQL_DATABASE"]) == ("guest", "bannou")  # bannou's
            health = {h.node: h for h in bannou_env.infrastructure_health()}
            assert sorted(health) == ["mysql", "rabbitmq", "redis"]
            assert all(h.ok for h in health.values()), health
            assert health["mysql"].check == "login"
        """
    )
    result = bannou_pytester.run(
        "--bannou-preset=test-infrastructure", "--bannou-backend=local", "--bannou-ready-timeout=180"
    )
    assert result.ret == 0, result.stdout.str()  # the test and the preset's tester cases
    assert result.parseoutcomes()["passed"] >= 2
