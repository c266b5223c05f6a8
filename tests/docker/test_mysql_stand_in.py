"""The stand-in ``mysql:8.0`` image (issue 15, point 1) on Compose and Swarm: the preset's
``MYSQL_*`` variables, read as the real image reads them, give the users a login needs; the
readiness probe of kind ``mysql`` logs in through the published port."""

from __future__ import annotations

import textwrap
import time

import pymysql
import pytest

from pytest_bannou.backends.base import Backend, BackendOptions
from pytest_bannou.backends.docker import engine as _docker
from pytest_bannou.backends.docker.compose import ComposeBackend
from pytest_bannou.backends.docker.images import specs
from pytest_bannou.backends.docker.swarm import SwarmBackend
from pytest_bannou.health import wait as health
from pytest_bannou.preset import load_file, resolve
from pytest_bannou.topology.model import Topology
from tests.support.docker_helpers import new_run_id

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("local_images")]

ROOT_PASSWORD = "stand-in-root-9c2e"
USER_PASSWORD = "stand-in-guest-3b7f"
PRESET = f"""
    name: mysql-stand-in
    description: MySQL alone, as bannou's compose file configures it
    topology:
      infrastructure:
        mysql:
          version: "8.0"
          environment:
            MYSQL_ROOT_PASSWORD: {ROOT_PASSWORD}
            MYSQL_DATABASE: bannou
            MYSQL_USER: guest
            MYSQL_PASSWORD: {USER_PASSWORD}
    """


@pytest.fixture
def topology(tmp_path) -> Topology:
    path = tmp_path / "mysql-stand-in.yaml"
    path.write_text(textwrap.dedent(PRESET))
    return resolve(load_file(path, environ={}))


def test_the_stand_in_has_the_tag_presets_resolve_to(topology: Topology) -> None:
    mysql = topology.node("mysql")
    assert mysql.image == _docker.image_for(mysql) == "mysql:8.0"
    assert "mysql:8.0" in {s.tag for s in specs()}


def _check_logins(backend: Backend, topology: Topology) -> None:
    deadline = time.monotonic() + 240
    backend.deploy(topology, deadline)
    health.wait_ready(backend, topology, deadline)  # the mysql probe logged in
    ep = backend.endpoint("mysql", 3306)
    with (
        pymysql.connect(
            host=ep.host, port=ep.port, user="guest", password=USER_PASSWORD, database="bannou"
        ) as conn,
        conn.cursor() as cur,
    ):
        cur.execute("SELECT CURRENT_USER(), DATABASE()")
        assert cur.fetchone() == ("guest@%", "bannou")
    pymysql.connect(host=ep.host, port=ep.port, user="root", password=ROOT_PASSWORD).close()
    with pytest.raises(pymysql.err.OperationalError) as denied:
        pymysql.connect(host=ep.host, port=ep.port, user="guest", password="wrong")
    assert denied.value.args[0] == 1045
    logs = backend.logs("mysql")
    assert "first-start settings applied" in logs
    assert ROOT_PASSWORD not in logs and USER_PASSWORD not in logs


def test_mysql_stand_in_on_compose(tmp_path, topology: Topology) -> None:
    if not ComposeBackend.available():
        pytest.skip("needs Docker Compose v2")
    rid = new_run_id("mysql")
    backend = ComposeBackend(BackendOptions(run_id=rid, workdir=tmp_path / rid, ready_timeout=240))
    try:
        _check_logins(backend, topology)
    finally:
        backend.teardown()


def test_mysql_stand_in_on_swarm(tmp_path, topology: Topology, swarm_ready: None) -> None:
    rid = new_run_id("mysqls")
    backend = SwarmBackend(BackendOptions(run_id=rid, workdir=tmp_path / rid, ready_timeout=240))
    try:
        _check_logins(backend, topology)
    finally:
        backend.teardown()
