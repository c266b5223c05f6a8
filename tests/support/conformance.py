"""Cases every backend must pass.

A backend's test module subclasses ``BackendConformance`` (the class has no ``Test`` prefix, so
it is not collected on its own) and overrides the factory methods: ``create_backend`` always,
``make_node`` to set images or commands, ``assert_gone`` to check the engine directly (no PIDs,
no containers). Every node runs the reference node (``pytest_bannou.reference.node``), configured
through its environment only, so the same cases work for processes and containers; ``exec``
cases run ``exec_python`` (the host's /usr is mounted into the local images).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from pytest_bannou.backends.base import Backend, BackendOptions
from pytest_bannou.errors import BackendUnavailable, DeployError, NodeNotReady
from pytest_bannou.health import wait as health
from pytest_bannou.topology.diff import diff
from pytest_bannou.topology.model import HealthCheck, Node, Topology


class BackendConformance:
    ready_timeout = 60.0
    exec_python = "/usr/bin/python3"  # an interpreter in the node's context (process or container)
    faults = frozenset({"kill", "pause", "disconnect"})  # the faults this backend can make
    # endpoints are the engine's (published ports), not a listener of the backend instance
    # (kubernetes' port-forwards): another instance finds the same one
    shared_endpoints = True

    # --- factory methods subclasses override ---------------------------------------------
    def create_backend(self, options: BackendOptions) -> Backend:
        raise NotImplementedError(f"{type(self).__name__} must override create_backend(options)")

    def make_options(self, workdir: Path, run_id: str) -> BackendOptions:
        return BackendOptions(run_id=run_id, workdir=workdir, ready_timeout=self.ready_timeout)

    def make_node(
        self,
        name: str,
        *,
        app_id: str | None = None,
        services: tuple[str, ...] = (),
        environment: Mapping[str, str] | None = None,
        replicas: int = 1,
        healthcheck: HealthCheck | None = None,
    ) -> Node:
        env = dict(environment or {})
        if services:
            env.setdefault("BANNOU_SERVICES_ENABLED", "false")
            for s in services:
                env[f"{s.replace('-', '_').upper()}_SERVICE_ENABLED"] = "true"
        return Node(
            name=name,
            app_id=app_id or name,
            services=services,
            replicas=replicas,
            environment=env,
            healthcheck=healthcheck or HealthCheck(kind="http", target="/health", interval=0.2, retries=0),
        )

    def make_topology(self, preset: str, *nodes: Node) -> Topology:
        return Topology(preset=preset, nodes=tuple(nodes))

    def assert_gone(self, backend: Backend, ids: list[str]) -> None:
        """Nothing of ``ids`` (replica ids from ``status()``) is left in the engine."""
        assert backend.status() == []

    # --- fixtures ------------------------------------------------------------------------
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> Iterator:
        created: list[Backend] = []

        def factory(run_id: str | None = None) -> Backend:
            rid = run_id or f"conf-{uuid.uuid4().hex[:10]}"
            backend = self.create_backend(self.make_options(tmp_path / rid, rid))
            created.append(backend)
            return backend

        yield factory
        for backend in created:
            backend.teardown()

    @pytest.fixture
    def backend(self, make_backend) -> Backend:
        return make_backend()

    # --- helpers -------------------------------------------------------------------------
    def deploy_ready(self, backend: Backend, topology: Topology) -> dict[str, float]:
        deadline = time.monotonic() + self.ready_timeout
        backend.deploy(topology, deadline)
        return health.wait_ready(backend, topology, deadline)

    def get(self, backend: Backend, node: str, path: str, replica: int = 0) -> httpx.Response:
        return httpx.get(backend.endpoint(node, replica=replica).url() + path, timeout=10)

    def ids(self, backend: Backend, node: str) -> dict[int, str]:
        return {s.replica: s.id for s in backend.status() if s.node == node}

    def exec_health(self, backend: Backend, node: str, replica: int) -> dict:
        """``/health`` of the node's replica, fetched from inside it through ``exec``."""
        code = (
            "import os, urllib.request as u; port = os.environ.get('HTTP_WEB_HOST_PORT') or '80'; "
            "print(u.urlopen(f'http://127.0.0.1:{port}/health', timeout=5).read().decode())"
        )
        result = backend.exec(node, [self.exec_python, "-c", code], timeout=30, replica=replica)
        assert result.exit_code == 0, result.output
        return json.loads(result.output.strip().splitlines()[-1])

    def two_nodes(self) -> Topology:
        return self.make_topology(
            "conformance-split",
            self.make_node("main", app_id="bannou", services=("connect", "testing")),
            self.make_node("auth", app_id="bannou-auth", services=("account", "auth")),
        )

    # --- cases ---------------------------------------------------------------------------
    def test_deploy_two_nodes_health_shows_app_id_and_services(self, backend: Backend) -> None:
        ready = self.deploy_ready(backend, self.two_nodes())
        assert set(ready) == {"main", "auth"}
        main = self.get(backend, "main", "/health").json()
        auth = self.get(backend, "auth", "/health").json()
        assert main["status"] == "healthy"
        assert (main["appId"], auth["appId"]) == ("bannou", "bannou-auth")
        assert {"connect", "testing"} <= set(main["services"]) and "auth" not in main["services"]
        assert {"account", "auth"} <= set(auth["services"]) and "testing" not in auth["services"]
        echo = httpx.post(backend.endpoint("auth").url() + "/auth/login", json={"u": 1}, timeout=10)
        assert echo.status_code == 200 and echo.json()["body"] == {"u": 1}
        missing = httpx.post(backend.endpoint("main").url() + "/auth/login", json={}, timeout=10)
        assert missing.status_code == 404 and missing.json()["appId"] == "bannou"

    def test_status_lists_every_replica_running(self, backend: Backend) -> None:
        topo = self.make_topology("conformance-status", self.make_node("a", replicas=2), self.make_node("b"))
        self.deploy_ready(backend, topo)
        status = sorted((s.node, s.replica, s.state) for s in backend.status())
        assert status == [("a", 0, "running"), ("a", 1, "running"), ("b", 0, "running")]
        assert len({s.id for s in backend.status()}) == 3

    def test_logs_contain_the_startup_line(self, backend: Backend) -> None:
        self.deploy_ready(backend, self.two_nodes())
        logs = backend.logs("auth")
        assert "bannou reference node bannou-auth listening on :" in logs
        assert len(backend.logs("auth", tail=1).splitlines()) == 1

    def test_scale_up_and_down(self, backend: Backend) -> None:
        self.deploy_ready(backend, self.make_topology("conformance-scale", self.make_node("web")))
        first = self.ids(backend, "web")[0]
        backend.scale("web", 3)
        health.wait_ready(backend, backend.topology, time.monotonic() + self.ready_timeout)
        assert sorted(self.ids(backend, "web")) == [0, 1, 2]
        for replica in range(3):
            assert self.get(backend, "web", "/health", replica=replica).json()["appId"] == "web"
        backend.scale("web", 1)
        assert self.ids(backend, "web") == {0: first}
        assert backend.topology.node("web").replicas == 1

    def test_restart_with_environment_change(self, backend: Backend) -> None:
        self.deploy_ready(backend, self.two_nodes())
        before = self.ids(backend, "auth")[0]
        untouched = self.ids(backend, "main")[0]
        backend.restart("auth", environment={"BANNOU_APP_ID": "renamed-auth"})
        health.wait_ready(backend, backend.topology, time.monotonic() + self.ready_timeout)
        assert self.get(backend, "auth", "/health").json()["appId"] == "renamed-auth"
        (status,) = [s for s in backend.status() if s.node == "auth"]
        assert status.id != before and status.restarts == 1
        assert self.ids(backend, "main")[0] == untouched
        assert backend.topology.node("auth").environment["BANNOU_APP_ID"] == "renamed-auth"

    def test_apply_changes_only_what_differs(self, backend: Backend) -> None:
        a = self.make_topology(
            "conformance-a",
            self.make_node("keep"),
            self.make_node("change", environment={"BANNOU_APP_ID": "old"}),
            self.make_node("remove"),
        )
        b = self.make_topology(
            "conformance-b",
            self.make_node("keep"),
            self.make_node("change", environment={"BANNOU_APP_ID": "new"}),
            self.make_node("add"),
        )
        self.deploy_ready(backend, a)
        kept, changed = self.ids(backend, "keep")[0], self.ids(backend, "change")[0]
        transition = diff(a, b)
        backend.apply(transition, time.monotonic() + self.ready_timeout)
        health.wait_ready(backend, b, time.monotonic() + self.ready_timeout)
        assert self.ids(backend, "keep") == {0: kept}
        assert self.ids(backend, "change")[0] != changed
        assert self.get(backend, "change", "/health").json()["appId"] == "new"
        assert self.get(backend, "add", "/health").json()["appId"] == "add"
        assert {s.node for s in backend.status()} == {"keep", "change", "add"}
        assert backend.topology == b

    def test_reattach_from_another_instance_changes_only_what_differs(self, make_backend) -> None:
        """A kept run changed by ``bannou-env update``: another instance (another process) takes
        it over and changes one node; the other keeps its replica and port."""
        first = make_backend()
        a = self.two_nodes()
        self.deploy_ready(first, a)
        main_id, first_url = self.ids(first, "main"), first.endpoint("main").url()
        second = self.create_backend(first.options)
        try:
            second.reattach(a, time.monotonic() + self.ready_timeout)
            assert self.ids(second, "main") == main_id and self.ids(second, "auth") == self.ids(first, "auth")
            main_url = second.endpoint("main").url()
            assert main_url == first_url or not self.shared_endpoints
            auth = a.node("auth")
            b = a.with_nodes(
                [a.node("main"), replace(auth, environment={**auth.environment, "BANNOU_APP_ID": "renamed"})]
            )
            second.apply(diff(a, b), time.monotonic() + self.ready_timeout)
            health.wait_ready(second, b, time.monotonic() + self.ready_timeout, nodes=["auth"])
            assert self.ids(second, "main") == main_id and second.endpoint("main").url() == main_url
            assert self.get(second, "auth", "/health").json()["appId"] == "renamed"
            c = b.with_nodes([b.node("main"), self.make_node("added")])  # one node removed, one added
            second.apply(diff(b, c), time.monotonic() + self.ready_timeout)
            health.wait_ready(second, c, time.monotonic() + self.ready_timeout, nodes=["added"])
            assert self.ids(second, "main") == main_id and second.endpoint("main").url() == main_url
            assert self.get(second, "added", "/health").json()["appId"] == "added"
            third = self.create_backend(first.options)  # the next change sees what the last one left
            third.reattach(c, time.monotonic() + self.ready_timeout)
            assert {s.node: s.id for s in third.status()} == {s.node: s.id for s in second.status()}
            assert {s.node for s in third.status()} == {"main", "added"}
            assert third.endpoint("main").url() == main_url or not self.shared_endpoints
        finally:
            second.teardown()

    def test_node_that_exits_is_not_ready_with_reason_and_logs(self, backend: Backend) -> None:
        topo = self.make_topology(
            "conformance-exit",
            self.make_node("fine"),
            self.make_node("broken", environment={"BANNOU_REFERENCE_EXIT_CODE": "3"}),
        )
        deadline = time.monotonic() + self.ready_timeout
        backend.deploy(topo, deadline)
        with pytest.raises(NodeNotReady) as info:
            health.wait_ready(backend, topo, deadline)
        err = info.value
        assert err.node == "broken" and err.preset == "conformance-exit"
        assert "exited with code 3" in err.reason
        assert "exiting with code 3" in err.logs
        assert "broken" in str(err) and backend.name in str(err)

    def test_node_that_never_gets_ready_fails_at_the_deadline(self, backend: Backend) -> None:
        topo = self.make_topology(
            "conformance-slow",
            self.make_node("sleepy", environment={"BANNOU_REFERENCE_STARTUP_DELAY": "600"}),
        )
        backend.deploy(topo, time.monotonic() + self.ready_timeout)
        # the node has printed its first line (a loaded engine may take a while to start it), so
        # the logs the error carries must show it
        end = time.monotonic() + self.ready_timeout
        while "starting" not in backend.logs("sleepy") and time.monotonic() < end:
            time.sleep(0.1)
        with pytest.raises(NodeNotReady) as info:
            health.wait_ready(backend, topo, time.monotonic() + 1.5)
        assert info.value.node == "sleepy"
        assert "deadline" in info.value.reason and "last probe error" in info.value.reason
        assert "starting" in info.value.logs

    def test_teardown_leaves_nothing_and_is_idempotent(self, backend: Backend) -> None:
        self.deploy_ready(backend, self.two_nodes())
        ids = [s.id for s in backend.status()]
        assert len(ids) == 2
        backend.teardown()
        assert backend.status() == []
        self.assert_gone(backend, ids)
        backend.teardown()
        assert backend.topology is None

    def test_teardown_after_a_failed_deploy(self, backend: Backend) -> None:
        topo = self.make_topology(
            "conformance-half",
            self.make_node("up"),
            self.make_node("down", environment={"BANNOU_REFERENCE_EXIT_CODE": "1"}),
        )
        deadline = time.monotonic() + self.ready_timeout
        backend.deploy(topo, deadline)
        with pytest.raises(NodeNotReady):
            health.wait_ready(backend, topo, deadline)
        ids = [s.id for s in backend.status()]
        backend.teardown()
        self.assert_gone(backend, ids)

    def test_clean_run_id_removes_an_abandoned_session(self, make_backend, tmp_path: Path) -> None:
        abandoned = make_backend()
        self.deploy_ready(abandoned, self.two_nodes())
        ids = [s.id for s in abandoned.status()]
        removed = type(abandoned).clean(run_id=abandoned.run_id, options=abandoned.options)
        assert removed, "clean() reported nothing removed"
        assert any(abandoned.run_id in line for line in removed)
        self.assert_gone(abandoned, ids)
        assert type(abandoned).clean(run_id=abandoned.run_id, options=abandoned.options) == []

    def test_exec_exit_code_output_and_timeout(self, backend: Backend) -> None:
        """Command healthchecks run through ``exec``: the node's environment, stdout and stderr,
        the exit code, and 124 when the command outlives its timeout (without waiting for it)."""
        self.deploy_ready(backend, self.make_topology("conformance-exec", self.make_node("ex")))
        py = self.exec_python
        ok = backend.exec("ex", [py, "-c", "import os; print('hello', os.environ['BANNOU_APP_ID'])"])
        assert (ok.exit_code, ok.output.strip()) == (0, "hello ex")
        bad = backend.exec(
            "ex", [py, "-c", "import sys; print('out'); sys.stderr.write('boom\\n'); sys.exit(4)"]
        )
        assert bad.exit_code == 4 and "out" in bad.output and "boom" in bad.output
        started = time.monotonic()
        slow = backend.exec("ex", [py, "-c", "import time; time.sleep(60)"], timeout=1.5)
        assert slow.exit_code == 124 and "timed out" in slow.output
        assert time.monotonic() - started < 30, "exec waited for the command instead of its timeout"

    def test_exec_runs_in_the_chosen_replica_and_names_unknown_ones(self, backend: Backend) -> None:
        self.deploy_ready(
            backend, self.make_topology("conformance-exec-replicas", self.make_node("ex", replicas=2))
        )
        seen = []
        for replica in (0, 1):
            inside = self.exec_health(backend, "ex", replica)
            outside = self.get(backend, "ex", "/health", replica=replica).json()
            assert (inside["pid"], inside["node"]) == (outside["pid"], outside["node"])
            seen.append((inside["pid"], inside["node"]))
        assert seen[0] != seen[1], "both replica indexes ran the command in the same replica"
        with pytest.raises(DeployError, match="nope"):
            backend.exec("nope", [self.exec_python, "-c", "pass"])
        with pytest.raises(DeployError, match="replica 5"):
            backend.exec("ex", [self.exec_python, "-c", "pass"], replica=5)

    # --- faults (Backend.kill_node, pause_node/resume_node, disconnect_node/reconnect_node) ---
    def fault_topology(self) -> Topology:
        return self.make_topology("conformance-faults", self.make_node("auth", app_id="bannou-auth"))

    def answers(self, backend: Backend, node: str, timeout: float = 2.0) -> bool:
        """Whether the node answers ``/health`` within ``timeout`` seconds."""
        try:
            url = backend.endpoint(node).url() + "/health"
            return httpx.get(url, timeout=timeout).status_code == 200
        except (httpx.HTTPError, DeployError):
            return False

    def wait_for(self, condition, what: str, timeout: float | None = None) -> None:
        end = time.monotonic() + (timeout or self.ready_timeout)
        while not condition():
            assert time.monotonic() < end, f"timed out waiting until {what}"
            time.sleep(0.2)

    def test_fault_kill_shows_in_status(self, backend: Backend) -> None:
        if "kill" not in self.faults:
            return self.assert_unsupported(backend, "kill")
        self.deploy_ready(backend, self.fault_topology())
        (before,) = [s for s in backend.status() if s.node == "auth"]
        with pytest.raises(DeployError, match="nope"):
            backend.kill_node("nope")
        backend.kill_node("auth", replica=0)

        def shows_it() -> bool:
            now = [s for s in backend.status() if s.node == "auth"]
            return any(s.state == "exited" or s.restarts > before.restarts for s in now)

        self.wait_for(shows_it, f"status() shows auth exited or restarted: {backend.status()}")

    def test_fault_pause_then_resume(self, backend: Backend) -> None:
        if "pause" not in self.faults:
            return self.assert_unsupported(backend, "pause")
        self.deploy_ready(backend, self.fault_topology())
        url = backend.endpoint("auth").url() + "/health"
        backend.pause_node("auth")
        try:
            with pytest.raises(httpx.TimeoutException):
                httpx.get(url, timeout=1.5)
            assert [s.state for s in backend.status() if s.node == "auth"] != ["exited"]
        finally:
            backend.resume_node("auth")
        self.wait_for(lambda: self.answers(backend, "auth"), "auth answers after resume")
        backend.resume_node("auth")  # not paused: nothing happens

    def test_fault_disconnect_then_reconnect(self, backend: Backend) -> None:
        if "disconnect" not in self.faults:
            return self.assert_unsupported(backend, "disconnect")
        self.deploy_ready(backend, self.fault_topology())
        backend.disconnect_node("auth")
        try:
            self.wait_for(lambda: not self.answers(backend, "auth"), "auth is unreachable", 30)
        finally:
            backend.reconnect_node("auth")
        self.wait_for(lambda: self.answers(backend, "auth"), "auth answers after reconnect")
        backend.reconnect_node("auth")  # connected: nothing happens

    def assert_unsupported(self, backend: Backend, kind: str) -> None:
        """A fault this backend cannot make (and its undo) is one clear error naming the
        backends that can."""
        calls = {
            "kill": [lambda: backend.kill_node("auth")],
            "pause": [lambda: backend.pause_node("auth"), lambda: backend.resume_node("auth")],
            "disconnect": [lambda: backend.disconnect_node("auth"), lambda: backend.reconnect_node("auth")],
        }
        for call in calls[kind]:
            with pytest.raises(BackendUnavailable) as info:
                call()
            message = info.value.message
            assert f"fault {kind!r} is not supported by the {backend.name} backend" in message
            assert "backends that can: " in message and backend.name not in message.split("can: ")[1]
