"""MySQL on the local backend (issue 15, point 1): a private server from the host's mariadbd/mysqld,
set up from the preset's ``MYSQL_*`` variables as the ``mysql`` image does, ready when a login
works, its datadir gone at teardown, its secrets masked."""

from __future__ import annotations

import textwrap
import time

import pymysql
import pytest

from pytest_bannou.backends.base import BackendOptions
from pytest_bannou.backends.local.backend import LocalBackend
from pytest_bannou.backends.mysql_server import server_binary
from pytest_bannou.errors import NodeNotReady
from pytest_bannou.health import wait as health
from pytest_bannou.preset import load_file, resolve
from tests.support.bannou_pytester import BannouPytester

pytestmark = pytest.mark.skipif(
    server_binary() is None, reason="needs mariadbd or mysqld: apt-get install mariadb-server"
)

ROOT_PASSWORD = "root-pw-4f1c9e"
USER_PASSWORD = "guest-pw-77d2a0"
MYSQL_PRESET = f"""
    name: with-mysql
    description: a bannou node and MySQL
    topology:
      nodes:
        - name: main
          appId: bannou
      infrastructure:
        mysql:
          version: "8.0"
          environment:
            MYSQL_ROOT_PASSWORD: {ROOT_PASSWORD}
            MYSQL_DATABASE: bannou
            MYSQL_USER: guest
            MYSQL_PASSWORD: {USER_PASSWORD}
    """


def _topology(tmp_path, text: str):
    path = tmp_path / "with-mysql.yaml"
    path.write_text(textwrap.dedent(text))
    return resolve(load_file(path, environ={}))


@pytest.fixture
def local(tmp_path):
    backend = LocalBackend(BackendOptions(run_id="mysql-test", workdir=tmp_path / "run"), grace=5.0)
    yield backend
    backend.teardown()


def _login(ep, user: str, password: str, database: str | None = None) -> pymysql.Connection:
    return pymysql.connect(host=ep.host, port=ep.port, user=user, password=password, database=database)


def test_mysql_runs_from_the_host_binary_with_the_preset_credentials(local, tmp_path):
    topology = _topology(tmp_path, MYSQL_PRESET)
    assert topology.node("mysql").healthcheck.kind == "mysql"  # ready means: a login works
    deadline = time.monotonic() + 180
    local.deploy(topology, deadline)
    health.wait_ready(local, topology, deadline)
    ep = local.endpoint("mysql", 3306)
    assert ep.host == "127.0.0.1"
    with _login(ep, "guest", USER_PASSWORD, "bannou") as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (x INT)")  # the user owns its database
        cur.execute("SELECT DATABASE(), CURRENT_USER()")
        assert cur.fetchone() == ("bannou", "guest@%")
    _login(ep, "root", ROOT_PASSWORD).close()
    for user, password in (("guest", "wrong"), ("root", ""), ("root", USER_PASSWORD)):
        with pytest.raises(pymysql.err.OperationalError) as denied:
            _login(ep, user, password)
        assert denied.value.args[0] == 1045, denied.value  # access denied
    datadirs = list(local.rundir.glob("mysql-mysql-*"))
    assert len(datadirs) == 1 and (datadirs[0] / "data" / "bannou").is_dir()
    pid = int(local.status()[0].id)
    local.teardown()
    assert not datadirs[0].exists(), "the datadir goes with the node"
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(pid, 0)


def test_mysql_without_a_password_option_fails_as_the_image_does(local, tmp_path):
    no_password = MYSQL_PRESET.replace(f"MYSQL_ROOT_PASSWORD: {ROOT_PASSWORD}", 'MYSQL_ROOT_PASSWORD: ""')
    topology = _topology(tmp_path, no_password)
    deadline = time.monotonic() + 60
    with pytest.raises(NodeNotReady) as err:  # main waits for mysql, which exits
        local.deploy(topology, deadline)
        health.wait_ready(local, topology, deadline)
    assert "MYSQL_ROOT_PASSWORD" in str(err.value) and "mysql" in str(err.value)


def test_mysql_secrets_are_masked_in_the_session_output(bannou_pytester: BannouPytester) -> None:
    bannou_pytester.preset("with-mysql", MYSQL_PRESET)
    bannou_pytester.pytester.makepyfile(
        """
        import pymysql
        import pytest

        @pytest.mark.preset("with-mysql")
        def test_login(bannou_env):
            env = bannou_env.topology.node("mysql").environment
            ep = bannou_env.endpoint("mysql", 3306)
            pymysql.connect(host=ep.host, port=ep.port, user="guest", password=env["MYSQL_PASSWORD"],
                            database="bannou").close()
            (mysql,) = [h for h in bannou_env.infrastructure_health() if h.node == "mysql"]
            assert mysql.ok and mysql.check == "login" and mysql.latency_ms > 0, mysql
            assert False, "deliberate: the failure shows the environment's sections"
        """
    )
    report = bannou_pytester.pytester.path / "report"
    result = bannou_pytester.run("-v", "-rA", f"--bannou-report={report}", "--bannou-ready-timeout=180")
    result.assert_outcomes(failed=1)
    output = result.stdout.str() + result.stderr.str()
    assert "deliberate" in output
    for secret in (ROOT_PASSWORD, USER_PASSWORD):
        assert secret not in output
        for path in (p for p in report.rglob("*") if p.is_file()):
            assert secret not in path.read_text(errors="replace"), path
