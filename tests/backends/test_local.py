"""The local backend: the shared conformance cases plus what only processes have (process
groups, state files, cleaning up after a killed session, parallel start, infrastructure)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import pytest

from pytest_bannou.backends.base import Backend, BackendOptions
from pytest_bannou.backends.local.backend import LocalBackend
from pytest_bannou.errors import BackendUnavailable, DeployError, NodeNotReady
from pytest_bannou.health import wait as health
from pytest_bannou.topology.model import HealthCheck, Node, Topology
from tests.support.backends import deploy_ready, node
from tests.support.conformance import BackendConformance


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat[stat.rfind(")") + 2] != "Z"


def wait_dead(pid: int, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


def log_times(text: str, marker: str) -> list[datetime]:
    return [datetime.fromisoformat(line.split(" ", 1)[0]) for line in text.splitlines() if marker in line]


class TestLocalConformance(BackendConformance):
    faults = frozenset({"kill", "pause"})

    def create_backend(self, options: BackendOptions) -> Backend:
        return LocalBackend(options, grace=1.0)

    def assert_gone(self, backend: Backend, ids: list[str]) -> None:
        for pid in ids:
            assert wait_dead(int(pid)), f"process {pid} is still alive"


@pytest.fixture
def local(make_local):
    return make_local()


@pytest.fixture
def make_local(tmp_path):
    created: list[LocalBackend] = []

    def factory(run_id: str = "local-test", grace: float = 1.0, **kw) -> LocalBackend:
        b = LocalBackend(BackendOptions(run_id=run_id, workdir=tmp_path / run_id, **kw), grace=grace)
        created.append(b)
        return b

    yield factory
    for b in created:
        b.teardown()


def topology(*nodes: Node, preset: str = "local-test"):
    from pytest_bannou.topology.model import Topology

    return Topology(preset=preset, nodes=tuple(nodes))


GRANDCHILD = textwrap.dedent(
    """
    import os, runpy, signal, subprocess, sys
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    stubborn = subprocess.Popen([sys.executable, "-c", code])
    escaped = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    with open(os.environ["PIDS_FILE"], "w") as f:
        f.write(f"{stubborn.pid} {escaped.pid}")
    sys.argv = ["node"]
    runpy.run_module("pytest_bannou.reference.node", run_name="__main__")
    """
)


def test_teardown_kills_grandchildren_that_ignore_sigterm_or_left_the_group(local, tmp_path):
    pids_file = tmp_path / "pids"
    n = node("spawner", command=(sys.executable, "-c", GRANDCHILD), environment={"PIDS_FILE": str(pids_file)})
    deploy_ready(local, topology(n))
    stubborn, escaped = map(int, pids_file.read_text().split())
    leader = int(local.status()[0].id)
    assert os.getpgid(stubborn) == leader and os.getpgid(escaped) != leader
    local.teardown()
    for pid in (leader, stubborn, escaped):
        assert wait_dead(pid), f"process {pid} survived teardown"


def test_every_replica_is_its_own_process_group_with_its_environment(local):
    n = node("grp", replicas=2, environment={"EXTRA_SETTING": "x1"})
    deploy_ready(local, topology(n))
    pids = [int(s.id) for s in local.status()]
    assert [os.getpgid(p) for p in pids] == pids
    assert os.getpgid(pids[0]) != os.getpgid(0)
    environ = Path(f"/proc/{pids[0]}/environ").read_bytes().split(b"\0")
    port = local.endpoint("grp").port
    assert b"EXTRA_SETTING=x1" in environ
    assert f"HTTP_WEB_HOST_PORT={port}".encode() in environ
    assert b"BANNOU_BIND_HOST=127.0.0.1" in environ
    assert b"BANNOU_APP_ID=grp" in environ
    assert local.endpoint("grp", replica=1).port != port


def test_extra_ports_get_their_own_host_ports(local):
    n = node("ports", ports=(80, 9090), healthcheck=None)
    deploy_ready(local, topology(n))
    http, extra = local.endpoint("ports"), local.endpoint("ports", port=9090)
    assert http.port != extra.port
    env = local.exec("ports", [sys.executable, "-c", "import os; print(os.environ['PORT_9090'])"])
    assert env.exit_code == 0 and env.output.strip() == str(extra.port)
    with pytest.raises(DeployError, match="no port 1234"):
        local.endpoint("ports", port=1234)


def test_state_file_records_the_session_and_teardown_removes_it(local, isolated_state_index):
    deploy_ready(local, topology(node("a"), node("b", replicas=2)))
    state = json.loads(local.state_file.read_text())
    assert state["run_id"] == "local-test" and state["owner_pid"] == os.getpid()
    assert sorted(r["pid"] for r in state["replicas"]) == sorted(int(s.id) for s in local.status())
    assert {r["node"] for r in state["replicas"]} == {"a", "b"}
    ports = {(r["node"], r["replica"]): r["ports"]["80"] for r in state["replicas"]}
    assert ports[("b", 1)] == local.endpoint("b", replica=1).port
    assert "local-test" in local.describe() and local.endpoint("a").url() in local.describe()
    index = list(isolated_state_index.glob("*.json"))
    assert len(index) == 1 and json.loads(index[0].read_text())["run_id"] == "local-test"
    local.teardown()
    assert not local.state_file.exists() and not list(isolated_state_index.glob("*.json"))


OWNER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from pytest_bannou.backends.base import BackendOptions
    from pytest_bannou.backends.local.backend import LocalBackend
    from pytest_bannou.topology.model import Node, Topology
    b = LocalBackend(BackendOptions(run_id="owner-dies", workdir=Path(sys.argv[1])))
    b.deploy(Topology("killed", (Node("x", "x"), Node("y", "y", replicas=2))), time.monotonic() + 30)
    print(json.dumps([int(s.id) for s in b.status()]), flush=True)
    time.sleep(600)
    """
)


def test_clean_removes_what_a_sigkilled_session_left(local, tmp_path):
    survivor = local  # a live session: clean() must leave it alone
    deploy_ready(survivor, topology(node("live")))
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(tmp_path / "owner")], stdout=subprocess.PIPE, text=True
    )
    try:
        pids = json.loads(owner.stdout.readline())
    finally:
        owner.kill()
        owner.wait()
    assert len(pids) == 3 and all(pid_alive(p) for p in pids)
    removed = LocalBackend.clean()
    assert sum("owner-dies" in line and "stopped node" in line for line in removed) == 3
    assert any("removed state file" in line for line in removed)
    for pid in pids:
        assert wait_dead(pid)
    assert [s.state for s in survivor.status()] == ["running"]
    assert LocalBackend.clean() == []


KILLED_WHILE_SPAWNING = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    from pytest_bannou.backends.local import backend as local
    from pytest_bannou.backends.base import BackendOptions
    from pytest_bannou.topology.model import Node, Topology
    spawn = local.LocalBackend._spawn
    def spawn_then_die(self, node, replica):
        spawn(self, node, replica)
        print(replica.proc.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # before the state file lists this replica
    local.LocalBackend._spawn = spawn_then_die
    b = local.LocalBackend(BackendOptions(run_id="dies-spawning", workdir=Path(sys.argv[1])))
    b.deploy(Topology("killed", (Node("x", "x"),)), time.monotonic() + 30)
    """
)


def test_clean_finds_a_process_spawned_just_before_the_session_was_killed(tmp_path):
    owner = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_SPAWNING, str(tmp_path / "owner")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert owner.returncode == -9, owner.stderr
    pid = int(owner.stdout.split()[0])
    try:
        assert pid_alive(pid)
        removed = LocalBackend.clean()
        assert any(f"killed leftover process {pid} of run dies-spawning" in line for line in removed), removed
        assert wait_dead(pid)
    finally:
        if pid_alive(pid):
            os.killpg(pid, 9)


def test_nodes_start_in_parallel(local):
    # each waits 5 s from its start before it listens: longer than four interpreters take to
    # start on a loaded machine, so in parallel all say "starting" before any listens
    delay = {"BANNOU_REFERENCE_STARTUP_DELAY": "5"}
    nodes = [node(f"p{i}", environment=delay) for i in range(4)]
    started = time.monotonic()
    deploy_ready(local, topology(*nodes))
    total = time.monotonic() - started
    starts = [t for n in nodes for t in log_times(local.logs(n.name), " starting (")]
    listens = [t for n in nodes for t in log_times(local.logs(n.name), " listening on ")]
    assert len(starts) == len(listens) == 4
    assert max(starts) < min(listens), "a node only started after another one was ready"
    assert total < 4 * 5.0  # the sum of the startup delays


def test_depends_on_waits_for_the_dependency_to_listen(local):
    slow = node("db-like", environment={"BANNOU_REFERENCE_STARTUP_DELAY": "0.5"})
    app = node("app", depends_on=("db-like",))
    deploy_ready(local, topology(app, slow))
    (dependency_ready,) = log_times(local.logs("db-like"), " listening on ")
    (app_start,) = log_times(local.logs("app"), " starting (")
    assert app_start >= dependency_ready


def test_dependency_that_exits_stops_the_deploy(local):
    bad = node("dep", environment={"BANNOU_REFERENCE_EXIT_CODE": "4"})
    with pytest.raises(NodeNotReady, match="exited with code 4 before 'app'"):
        local.deploy(topology(node("app", depends_on=("dep",)), bad), time.monotonic() + 30)
    assert {s.node for s in local.status()} == {"dep"}


def test_bad_dependencies_are_clear_errors(local):
    with pytest.raises(DeployError, match="depends on ghost"):
        local.deploy(topology(node("a", depends_on=("ghost",))), time.monotonic() + 5)
    local.teardown()
    with pytest.raises(DeployError, match="cycle"):
        local.deploy(
            topology(node("a", depends_on=("b",)), node("b", depends_on=("a",))), time.monotonic() + 5
        )


def test_missing_command_names_the_node_and_teardown_cleans_the_half_deploy(local):
    ghost = node("ghost", command=("no-such-binary-xyz",))
    with pytest.raises(DeployError, match=r"'ghost'.*no-such-binary-xyz.*bannou_local_command"):
        local.deploy(topology(node("fine"), ghost), time.monotonic() + 5)
    (started,) = local.status()
    assert started.node == "fine"
    local.teardown()
    assert wait_dead(int(started.id)) and local.status() == []


def test_local_command_option_is_used_when_the_node_has_none(make_local, tmp_path):
    marker = tmp_path / "ran"
    script = (
        f"open({str(marker)!r}, 'w').write('yes'); import runpy; "
        "runpy.run_module('pytest_bannou.reference.node', run_name='__main__')"
    )
    b = make_local(run_id="with-local-command", local_command=[sys.executable, "-c", script])
    deploy_ready(b, topology(node("dev")))
    assert marker.read_text() == "yes"


def test_exec_runs_with_the_node_environment_and_times_out(local):
    deploy_ready(local, topology(node("ex", app_id="exec-app")))
    out = local.exec("ex", [sys.executable, "-c", "import os; print(os.environ['BANNOU_APP_ID'])"])
    assert (out.exit_code, out.output.strip()) == (0, "exec-app")
    slow = local.exec("ex", [sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.3)
    assert slow.exit_code == 124 and "timed out" in slow.output
    assert local.exec("ex", ["no-such-binary-xyz"]).exit_code == 127


def test_unknown_node_is_a_clear_error(local):
    deploy_ready(local, topology(node("only")))
    with pytest.raises(DeployError, match=r"no node 'other'.*only"):
        local.endpoint("other")


def test_restart_keeps_ports_and_rotates_the_log(local):
    deploy_ready(local, topology(node("r")))
    port = local.endpoint("r").port
    local.restart("r")
    health.wait_ready(local, local.topology, time.monotonic() + 30)
    assert local.endpoint("r").port == port
    assert local.logs("r").count("listening on") == 1
    assert (local.rundir / "r-0.previous.log").exists()


def test_unsupported_infrastructure_says_what_to_do(local):
    minio = Node(name="minio", app_id="minio", kind="infrastructure", infra_type="minio", ports=(9000,))
    with pytest.raises(BackendUnavailable, match=r"preset 'local-test': .*'minio'.*Docker backend"):
        local.deploy(topology(node("a"), minio), time.monotonic() + 5)
    assert local.status() == []


@pytest.mark.skipif(
    not shutil.which("redis-server"), reason="needs redis-server: apt-get install redis-server"
)
def test_redis_runs_from_its_server_binary(local):
    redis = Node(
        name="redis",
        app_id="redis",
        kind="infrastructure",
        infra_type="redis",
        ports=(6379,),
        healthcheck=HealthCheck(kind="tcp", target=6379, interval=0.1, retries=0),
    )
    deploy_ready(local, topology(redis))
    ep = local.endpoint("redis")
    with socket.create_connection((ep.host, ep.port), timeout=5) as s:
        s.sendall(b"PING\r\n")
        assert s.recv(64).startswith(b"+PONG")
    pid = int(local.status()[0].id)
    local.teardown()
    assert wait_dead(pid)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _rabbitmq_installed() -> bool:
    return bool(shutil.which("epmd")) and (
        Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() or bool(shutil.which("rabbitmq-server"))
    )


@pytest.mark.slow
@pytest.mark.skipif(
    not _rabbitmq_installed(), reason="needs rabbitmq-server: apt-get install rabbitmq-server"
)
def test_rabbitmq_runs_from_its_server_binary(local):
    rabbit = Node(
        name="rabbitmq",
        app_id="rabbitmq",
        kind="infrastructure",
        infra_type="rabbitmq",
        ports=(5672,),
        healthcheck=HealthCheck(kind="tcp", target=5672, interval=0.5, retries=0),
    )
    deploy_ready(local, topology(rabbit), timeout=120)
    ep = local.endpoint("rabbitmq")
    with socket.create_connection((ep.host, ep.port), timeout=5) as s:
        s.sendall(b"AMQP\x00\x00\x09\x01")
        assert s.recv(8)[:1] == b"\x01"  # connection.start frame
    (replica,) = json.loads(local.state_file.read_text())["replicas"]
    group = [int(p) for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) == replica["pgid"]]
    assert len(group) >= 2, "the broker and its private epmd share one process group"
    local.teardown()
    for pid in group:
        assert wait_dead(pid)


def test_teardown_signals_sigterm_first(make_local, tmp_path):
    local = make_local(grace=30.0)  # time for the handler to run on a loaded machine before SIGKILL
    flag = tmp_path / "got-term"
    script = textwrap.dedent(
        f"""
        import signal, sys, time, runpy
        def on_term(*a):
            open({str(flag)!r}, "w").write("term")
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        print("ready", flush=True)
        time.sleep(600)
        """
    )
    n = node(
        "term", command=(sys.executable, "-c", script), healthcheck=HealthCheck(kind="log", target="^ready")
    )
    deploy_ready(local, topology(n))
    local.teardown()
    assert flag.read_text() == "term"


def test_state_survives_in_status_after_a_replica_exits(local):
    n = node("quits", command=(sys.executable, "-c", "raise SystemExit(5)"), healthcheck=None)
    local.deploy(topology(n), time.monotonic() + 5)
    proc_end = time.monotonic() + 10
    while time.monotonic() < proc_end and local.status()[0].state != "exited":
        time.sleep(0.02)
    (s,) = local.status()
    assert (s.state, s.exit_code) == ("exited", 5)


def test_scale_to_negative_is_rejected(local):
    deploy_ready(local, topology(node("s")))
    with pytest.raises(DeployError, match=">= 0"):
        local.scale("s", -1)


def test_apply_ends_in_the_new_topology_whatever_the_transition_started_from(local):
    from pytest_bannou.topology.diff import diff

    a = topology(node("same"), node("changes"), node("goes"))
    b = topology(node("same"), node("changes", environment={"BANNOU_APP_ID": "changed"}), node("comes"))
    deploy_ready(local, a)
    same = {s.node: s.id for s in local.status()}["same"]
    local.apply(diff(None, b), time.monotonic() + 30)  # claims every node is new
    health.wait_ready(local, b, time.monotonic() + 30)
    ids = {s.node: s.id for s in local.status()}
    assert set(ids) == {"same", "changes", "comes"} and ids["same"] == same
    assert local.exec("changes", ["sh", "-c", "echo $BANNOU_APP_ID"]).output.strip() == "changed"


def test_clean_never_signals_a_process_that_is_not_of_the_session(isolated_state_index):
    """A recycled PID in a stale state file belongs to someone else: clean() must leave it."""
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
    )
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    try:
        isolated_state_index.mkdir(parents=True, exist_ok=True)
        stale = {
            "run_id": "stale",
            "session": "stale.1.deadbeef",
            "owner_pid": gone.pid,
            "replicas": [{"node": "x", "replica": 0, "pid": bystander.pid, "pgid": bystander.pid}],
        }
        (isolated_state_index / "stale.1.deadbeef.json").write_text(json.dumps(stale))
        (isolated_state_index / "broken.json").write_text("{not json")
        removed = LocalBackend.clean()
        assert not any("stopped node" in line for line in removed)
        assert any("stale.1.deadbeef.json" in line for line in removed)
        assert bystander.poll() is None and pid_alive(bystander.pid)
    finally:
        bystander.kill()
        bystander.wait()


def _planted_group() -> subprocess.Popen:
    """An unrelated process group this test starts itself (``sleep 600`` in its own session)."""
    return subprocess.Popen(["sleep", "600"], start_new_session=True)


@pytest.mark.parametrize("planted", ["no session field", "a session the process does not carry"])
def test_sweep_signals_only_groups_that_carry_the_marker_and_start_time(
    planted, tmp_path, isolated_state_index
):
    """Issue 12 point 2: a planted state file naming an unrelated process group is refused, while
    the real leftovers of a SIGKILLed session are still removed."""
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(tmp_path / "owner")], stdout=subprocess.PIPE, text=True
    )
    try:
        pids = json.loads(owner.stdout.readline())
    finally:
        owner.kill()
        owner.wait()
    bystander = _planted_group()
    try:
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        stale = {
            "run_id": "planted",
            "owner_pid": gone.pid,
            "replicas": [{"node": "x", "replica": 0, "pid": bystander.pid, "pgid": bystander.pid}],
        }
        if planted != "no session field":
            stale["session"] = "planted.1.cafebabe"  # the sleep does not carry this marker
        (isolated_state_index / "planted.json").write_text(json.dumps(stale))
        removed = LocalBackend.clean()
        assert not any("run planted" in line and "stopped node" in line for line in removed), removed
        assert sum("owner-dies" in line and "stopped node" in line for line in removed) == 3, removed
        for pid in pids:
            assert wait_dead(pid)
        assert bystander.poll() is None and pid_alive(bystander.pid)
    finally:
        bystander.kill()
        bystander.wait()


def test_a_group_is_ours_only_with_the_marker_and_the_recorded_start_time(local):
    """A group leader that carries the session's marker but not the start time the state file
    recorded (its PID was reused) is not signalled; a process without the marker never is."""
    from pytest_bannou.backends.local import processes

    deploy_ready(local, topology(node("keep")))
    (rep,) = json.loads(local.state_file.read_text())["replicas"]
    assert rep["start"]  # recorded when spawning
    assert processes.group_is_ours(rep["pgid"], local.session, rep["start"])
    assert not processes.group_is_ours(rep["pgid"], local.session, "1")
    assert not processes.group_is_ours(rep["pgid"], "another.session", rep["start"])
    bystander = _planted_group()
    try:
        assert not processes.group_is_ours(bystander.pid, local.session, None)
    finally:
        bystander.kill()
        bystander.wait()


def test_state_files_are_private_and_foreign_ones_are_ignored(local, isolated_state_index):
    deploy_ready(local, topology(node("p")))
    for path in (local.state_file, local.index_file):
        assert (path.stat().st_mode & 0o777) == 0o600
    assert (isolated_state_index.stat().st_mode & 0o077) == 0


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server (apt-get install)")
def test_faults_reach_a_redis_server_started_here(local, monkeypatch):
    # redis-server rewrites its process title over its environment unless told not to: the
    # marker that proves the process ours would be gone, and a kill would be refused
    redis = Node(
        name="redis", app_id="redis", kind="infrastructure", infra_type="redis", ports=(6379,),
        healthcheck=HealthCheck(kind="tcp", target=6379, interval=0.2),
    )  # fmt: skip
    deploy_ready(local, Topology(preset="redis-faults", nodes=(redis,)), timeout=60)
    pid = int(next(s.id for s in local.status() if s.node == "redis"))
    local.pause_node("redis")
    local.resume_node("redis")
    with monkeypatch.context() as m:  # a process no longer proven ours: refused, and said so
        m.setattr("pytest_bannou.backends.local.processes.group_is_ours", lambda *a: False)
        with pytest.raises(DeployError, match=r"cannot kill node 'redis' replica 0: .* no longer proven"):
            local.kill_node("redis")
    local.kill_node("redis")
    assert wait_dead(pid), "kill_node left redis-server running"
