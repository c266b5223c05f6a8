"""MySQL in a preset (issue 15, point 1): bannou's credentials unless the preset gives its own,
readiness by login, one image tag, and the image's rules for the ``MYSQL_*`` variables."""

from __future__ import annotations

import pytest

from pytest_bannou.backends.docker import engine as _docker
from pytest_bannou.backends.mysql_server import Settings, SetupError, client_login
from pytest_bannou.preset import load_file, resolve
from pytest_bannou.topology.model import Node


def _mysql(write, infra: str) -> Node:
    text = f"""
        topology:
          nodes: [{{name: main}}]
          infrastructure:
            {infra}
        """
    return resolve(load_file(write("p", text), environ={})).node("mysql")


def test_bannous_credentials_by_default_and_the_presets_over_them(write):
    mysql = _mysql(write, "mysql: {}")
    assert mysql.environment == {
        "MYSQL_ROOT_PASSWORD": "rootpassword",
        "MYSQL_DATABASE": "bannou",
        "MYSQL_USER": "guest",
        "MYSQL_PASSWORD": "guest",
    }  # bannou's provisioning/docker-compose.services.yml
    assert mysql.healthcheck.kind == "mysql" and mysql.healthcheck.target == 3306
    assert mysql.image == _docker.image_for(mysql) == "mysql:8.0"
    own = _mysql(write, "mysql: {environment: {MYSQL_PASSWORD: mine, MYSQL_DATABASE: game}}")
    assert own.environment["MYSQL_PASSWORD"] == "mine" and own.environment["MYSQL_DATABASE"] == "game"
    assert own.environment["MYSQL_USER"] == "guest"
    tcp = _mysql(write, "mysql: {healthcheck: {tcp: 3306}}")
    assert tcp.healthcheck.kind == "tcp"  # a preset's own healthcheck wins


def test_a_mysql_node_renders_a_tcp_healthcheck_for_the_engine(write):
    hc = _docker.container_healthcheck(_mysql(write, "mysql: {}"), local_image=False)
    assert hc is not None and "3306" in hc["test"][-1]


@pytest.mark.parametrize(
    ("env", "login"),
    [
        ({"MYSQL_ROOT_PASSWORD": "r", "MYSQL_USER": "u", "MYSQL_PASSWORD": "p", "MYSQL_DATABASE": "d"},
         ("u", "p", "d")),
        ({"MYSQL_ROOT_PASSWORD": "r"}, ("root", "r", "")),
        ({"MARIADB_ROOT_PASSWORD": "m", "MYSQL_ROOT_PASSWORD": "r"}, ("root", "m", "")),
        ({"MYSQL_ALLOW_EMPTY_PASSWORD": "yes"}, ("root", "", "")),
        ({"MYSQL_RANDOM_ROOT_PASSWORD": "1"}, None),
    ],
)  # fmt: skip
def test_who_a_client_logs_in_as(env, login):
    assert client_login(env) == login


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "password option is not specified"),
        ({"MYSQL_ALLOW_EMPTY_PASSWORD": "no"}, "password option is not specified"),
        ({"MYSQL_ROOT_PASSWORD": "r", "MYSQL_USER": "root", "MYSQL_PASSWORD": "p"}, 'MYSQL_USER="root"'),
        ({"MYSQL_ROOT_PASSWORD": "r", "MYSQL_USER": "u"}, "go together"),
    ],
)
def test_the_images_rules_for_its_variables(env, message):
    with pytest.raises(SetupError, match=message):
        Settings.from_env(env).check()


def test_password_files_are_read(tmp_path):
    secret = tmp_path / "root"
    secret.write_text("from-a-file\n")
    assert Settings.from_env({"MYSQL_ROOT_PASSWORD_FILE": str(secret)}).root_password == "from-a-file"
    with pytest.raises(SetupError, match="cannot read it"):
        Settings.from_env({"MYSQL_ROOT_PASSWORD_FILE": str(tmp_path / "missing")})
