"""MySQL on Kubernetes (issue 15, point 1): the manifests pass the preset's ``MYSQL_*`` variables
to the container (the real image and the stand-in read them), its readiness probe is a TCP one,
and on the cluster the stand-in ``mysql:8.0`` accepts the preset's credentials through the
plugin's port-forward."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pymysql
import pytest

from pytest_bannou.backends import kubernetes as k8s
from pytest_bannou.backends.base import BackendOptions
from pytest_bannou.backends.kubernetes import KubernetesBackend
from pytest_bannou.health import wait as health
from pytest_bannou.preset import load_file, resolve
from pytest_bannou.topology.model import Topology
from tests.support.k8s import options

pytestmark = [
    pytest.mark.timeout(400),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning"),
]

ROOT_PASSWORD = "k8s-root-pw-61aa"
USER_PASSWORD = "k8s-guest-pw-0c3d"
PRESET = f"""
    name: mysql-k8s
    description: MySQL alone
    topology:
      infrastructure:
        mysql:
          environment:
            MYSQL_ROOT_PASSWORD: {ROOT_PASSWORD}
            MYSQL_DATABASE: bannou
            MYSQL_USER: guest
            MYSQL_PASSWORD: {USER_PASSWORD}
    """


@pytest.fixture
def topology(tmp_path: Path) -> Topology:
    path = tmp_path / "mysql-k8s.yaml"
    path.write_text(textwrap.dedent(PRESET))
    return resolve(load_file(path, environ={}))


def test_manifests_pass_the_mysql_environment(tmp_path: Path, topology: Topology) -> None:
    docs = k8s.render_manifests(topology, BackendOptions(run_id="r1", workdir=tmp_path))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MYSQL_ROOT_PASSWORD"] == ROOT_PASSWORD and env["MYSQL_PASSWORD"] == USER_PASSWORD
    assert env["MYSQL_DATABASE"] == "bannou" and env["MYSQL_USER"] == "guest"
    assert container["image"] == "mysql:8.0"
    assert container["readinessProbe"]["tcpSocket"] == {"port": 3306}  # the login is the plugin's


@pytest.fixture
def mysql_image(kubeconfig: str) -> None:
    from pytest_bannou.backends.docker import engine as _docker
    from pytest_bannou.backends.docker.images import ensure_images

    cli = _docker.client()
    try:
        if "mysql:8.0" not in ensure_images(cli):
            pytest.skip("needs mariadbd or mysqld for the stand-in mysql:8.0 image")
    finally:
        cli.close()


@pytest.mark.usefixtures("mysql_image")
def test_mysql_stand_in_on_the_cluster(kubeconfig: str, tmp_path: Path, topology: Topology) -> None:
    backend = KubernetesBackend(options(tmp_path, kubeconfig, ready_timeout=240))
    try:
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
            cur.execute("SELECT CURRENT_USER()")
            assert cur.fetchone() == ("guest@%",)
        with pytest.raises(pymysql.err.OperationalError) as denied:
            pymysql.connect(host=ep.host, port=ep.port, user="root", password="wrong")
        assert denied.value.args[0] == 1045
    finally:
        backend.teardown()
