"""The local backend: every node replica is a process group on this machine.

The embedded default, needing nothing installed: bannou nodes run ``node.command``, else the ini
``bannou_local_command`` (how a bannou developer runs ``dotnet bannou-service.dll``), else the
reference node. Each replica gets the node's environment over a copy of ``os.environ``, its own
free ports on 127.0.0.1 (``HTTP_WEB_HOST_PORT`` for the HTTP port, ``PORT_{containerport}`` for the
others) and a log file under ``<workdir>/local``. Redis, RabbitMQ and MySQL/MariaDB run from their
server binaries when installed; other infrastructure needs a Docker backend.

Nothing leaks: every process carries ``PYTEST_BANNOU_RUN_ID`` and the backend session's marker in
its environment, and a state file (in the run directory and in a machine-wide index) records PIDs,
process groups, start times, ports, the run id and the owner PID, so ``LocalBackend.clean()`` can
remove what a killed session left (``state``). Spawning and signalling: ``processes``; Redis and
RabbitMQ as processes: ``infrastructure``; free ports: ``ports``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path

from ...errors import DeployError, NodeNotReady
from ...topology.diff import Action, Transition, diff
from ...topology.ingress import UPSTREAM_ENV, ingress_target, is_ingress, split_upstream
from ...topology.model import Node, Topology
from ..base import (
    Availability,
    Backend,
    BackendOptions,
    Endpoint,
    ExecResult,
    ReplicaStatus,
    TesterContainer,
    TesterContainerOutcome,
)
from . import processes, state
from .infrastructure import (
    INSTALL_HINT,
    WITH_EPMD,
    check_runnable,
    infra_command,
    ingress_command,
    ingress_config_changed,
    remove_data,
)
from .ports import free_port, release
from .processes import HOST, KILL_WAIT, RUN_ID_ENV, SESSION_ENV
from .processes import Replica as _Replica
from .state import DEFAULT_GRACE, STATE_DIR_ENV, state_index_dir

__all__ = [
    "DEFAULT_GRACE",
    "HOST",
    "INSTALL_HINT",
    "KILL_WAIT",
    "REFERENCE_COMMAND",
    "RUN_ID_ENV",
    "SESSION_ENV",
    "STATE_DIR_ENV",
    "WITH_EPMD",
    "LocalBackend",
    "state_index_dir",
]

REFERENCE_COMMAND = (sys.executable, "-m", "pytest_bannou.reference.node")


class LocalBackend(Backend):
    """Processes on this machine; see the module docstring."""

    name = "local"

    def __init__(self, options: BackendOptions, grace: float | None = None) -> None:
        super().__init__(options)
        extra = options.extra or {}
        self.grace = float(grace if grace is not None else extra.get("grace_period", DEFAULT_GRACE))
        self.rundir = Path(options.workdir) / "local"
        suffix = f"-{options.worker}" if options.worker else ""
        self.state_file = self.rundir / f"state{suffix}.json"
        self.session = f"{self.run_id}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        self.index_file = state_index_dir() / f"{self.session}.json"
        self._nodes: dict[str, Node] = {}
        self._replicas: dict[str, list[_Replica]] = {}
        self._lock = threading.RLock()
        self._old_ports: dict[str, list[dict[int, int]]] = {}  # of nodes being recreated
        self._paused: set[tuple[str, int]] = set()  # (node, replica) stopped by pause_node

    # --- capability -----------------------------------------------------------------------
    @classmethod
    def available(cls) -> Availability:
        return Availability(True)

    @classmethod
    def dead_runs(cls) -> set[str]:
        return state.dead_runs()

    def tester_images(self) -> Availability:
        """Image testers run in Docker on the host's network (``docker.host_testers``)."""
        from ..docker.host_testers import host_tester_availability

        return host_tester_availability()

    def run_tester_container(self, tester: TesterContainer) -> TesterContainerOutcome:  # type: ignore[override]
        """In a container on the host's network, reaching the nodes at their 127.0.0.1 ports."""
        from ..docker.host_testers import run_on_host_network

        def address(node: str, port: int | None) -> tuple[str, int]:
            ep = self.endpoint(node, port)
            return ep.host, ep.port

        return run_on_host_network(tester, address)

    def attach_info(self) -> dict[str, object]:
        with self._lock:
            logs = {name: [str(r.log_path) for r in reps] for name, reps in self._replicas.items()}
        return {"logs": logs, "pid_ids": True}

    # --- lifecycle ------------------------------------------------------------------------
    def deploy(self, topology: Topology, deadline: float) -> None:
        with self._lock:
            if self.topology is not None:
                self.apply(diff(self.topology, topology), deadline)
                return
            for node in topology.nodes:
                check_runnable(node, self.rundir, topology.preset)
            self.rundir.mkdir(parents=True, exist_ok=True)
            self.topology = topology
            self._start_nodes(list(topology.nodes), deadline)

    def reattach(self, topology: Topology, deadline: float) -> None:
        """Continue the backend session recorded in the run's state file: its marker (so new
        processes are cleaned up with the old ones), its state files, and its replicas, adopted
        by PID, process group and start time (``processes.Adopted``). Nothing is started or
        stopped: recorded replicas of nodes ``topology`` does not have (left by a change whose
        undo failed) stay listed by ``status`` until ``teardown``/``clean``."""
        with self._lock:
            data = state.kept_state(self.rundir, self.run_id, topology.preset)
            self.session = str(data["session"])
            # its files, where this backend puts them (a state file never names another place)
            self.state_file = state.file_within(data.get("state_file"), self.rundir) or self.state_file
            self.index_file = state.file_within(data.get("index_file"), state_index_dir()) or self.index_file
            self.topology = topology
            nodes = {n.name: n for n in topology.nodes}
            fronts = {n.name for n in topology.nodes if is_ingress(n)}  # adopted after the nodes
            for rep in sorted(
                data.get("replicas") or [],
                key=lambda r: (r.get("node") in fronts, int(r.get("replica") or 0)),
            ):
                name = str(rep.get("node"))
                node = nodes.get(name)
                if node is not None:
                    self._nodes[name] = node
                replica = self._adopt(node or Node(name=name, app_id=name, command=("-",)), rep)
                self._replicas.setdefault(name, []).append(replica)

    def _adopt(self, node: Node, rep: Mapping) -> _Replica:
        """A replica of the recorded session, as ``_make_replica`` made it, with its process."""
        ports = {int(k): int(v) for k, v in (rep.get("ports") or {}).items()}
        r = self._make_replica(node, int(rep.get("replica") or 0), ports)
        start = rep.get("start")
        r.start = str(start) if start is not None else None
        r.proc = processes.Adopted(int(rep.get("pid") or 0), self.session, r.start)
        return r

    def apply(self, transition: Transition, deadline: float) -> None:
        with self._lock:
            super().apply(transition, deadline)

    def _plan(self, transition: Transition) -> Transition:
        # diff against what actually runs here, so a transition computed from another
        # starting point still ends in exactly ``new``
        running = Topology(preset=self._preset(), nodes=tuple(self._nodes.values()))
        return diff(running, transition.new)

    def _check_changes(self, plan: Transition, deadline: float) -> None:
        assert plan.new is not None
        for c in plan.of(Action.START, Action.RECREATE):
            check_runnable(c.new, self.rundir, plan.new.preset)
        self.rundir.mkdir(parents=True, exist_ok=True)
        recreated = [c.name for c in plan.of(Action.RECREATE)]
        self._old_ports = {name: [r.ports for r in self._replicas.get(name, [])] for name in recreated}

    def _remove_nodes(self, names: Sequence[str], deadline: float) -> None:
        processes.stop_many([r for name in names for r in self._replicas.get(name, [])], self.grace)
        self._remove_data(names)
        for name in names:
            self._forget(name, keep_ports=name in self._old_ports)

    def _create_nodes(self, nodes: Sequence[Node], deadline: float) -> None:
        old_ports, self._old_ports = self._old_ports, {}
        self._start_nodes(list(nodes), deadline, old_ports)

    def _set_replicas(self, nodes: Sequence[Node], deadline: float) -> None:
        for n in nodes:
            self._nodes[n.name] = n
            self._scale_replicas(n, n.replicas)

    def _changes_done(self, plan: Transition, deadline: float) -> None:
        self._old_ports = {}
        for node in [n for n in self._nodes.values() if is_ingress(n) and n.command is None]:
            for r in self._replicas.get(node.name, []):  # the fronted node moved: nginx reloads
                if ingress_config_changed(node, r.ports, self.rundir, self._ingress_upstreams(node)):
                    processes.signal_leader(r, self.session, signal.SIGHUP)
        self._save_state()

    def teardown(self) -> None:
        with self._lock:
            everything = [r for reps in self._replicas.values() for r in reps]
            for name in {name for name, _ in self._paused}:  # a stopped group ignores SIGTERM
                with contextlib.suppress(DeployError):
                    self.resume_node(name)
            processes.stop_many(everything, self.grace)
            processes.kill_marked(self.session, self.grace, exclude={os.getpid()})
            self._remove_data(list(self._replicas))
            for r in everything:
                for port in r.ports.values():
                    release(port)
            self._replicas.clear()
            self._nodes.clear()
            self.topology = None
            for path in (self.state_file, self.index_file):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    @classmethod
    def clean(cls, run_id: str | None = None, options: BackendOptions | None = None) -> list[str]:
        extra = list((Path(options.workdir) / "local").glob("state*.json")) if options is not None else []
        return state.clean(run_id, extra)

    # --- inspection -----------------------------------------------------------------------
    def status(self) -> list[ReplicaStatus]:
        with self._lock:
            out = []
            for name, reps in self._replicas.items():
                for r in reps:
                    code = r.exit_code()
                    ports = ", ".join(f"{c}->{h}" for c, h in r.ports.items())
                    out.append(
                        ReplicaStatus(
                            node=name,
                            replica=r.index,
                            state="running" if code is None else "exited",
                            id=str(r.pid),
                            exit_code=code,
                            restarts=r.restarts,
                            detail=f"pid {r.pid}, ports {ports or '-'}, log {r.log_path}",
                        )
                    )
            return out

    def endpoint(self, node: str, port: int | None = None, replica: int = 0) -> Endpoint:
        with self._lock:
            n = self._node(node)
            reps = self._replicas.get(node, [])
            if replica >= len(reps):
                raise DeployError(
                    f"local backend: node {node!r} has {len(reps)} replicas, no replica {replica}"
                )
            wanted = port if port is not None else n.http_port
            r = reps[replica]
            if wanted not in r.ports:
                raise DeployError(
                    f"local backend: node {node!r} has no port {wanted}; its ports: "
                    f"{', '.join(map(str, n.ports)) or '(none)'}"
                )
            return Endpoint(HOST, r.ports[wanted])

    def logs(self, node: str, tail: int | None = None) -> str:
        with self._lock:
            reps = self._replicas.get(node)
            paths = [r.log_path for r in reps] if reps else _log_files(self.rundir, node)
        several = len(paths) > 1
        lines: deque[str] = deque(maxlen=tail) if tail else deque()
        for i, path in enumerate(paths):
            with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    lines.append(f"[{node}-{i}] {line}" if several else line)
        return "".join(lines)

    def exec(self, node: str, argv: Sequence[str], timeout: float = 10.0, replica: int = 0) -> ExecResult:
        with self._lock:
            self._node(node)
            reps = self._replicas.get(node, [])
            env = reps[replica].env if replica < len(reps) else None
        if env is None:
            raise DeployError(f"local backend: node {node!r} has no replica {replica} to run {argv!r} for")
        return processes.run_with_timeout(argv, env, timeout)

    # --- changes --------------------------------------------------------------------------
    def restart(self, node: str, environment: Mapping[str, str] | None = None) -> None:
        with self._lock:
            super().restart(node, environment)

    def scale(self, node: str, replicas: int) -> None:
        with self._lock:
            super().scale(node, replicas)

    def _restart_node(self, node: Node, recreate: bool, deadline: float) -> None:
        reps = self._replicas.get(node.name, [])
        processes.stop_many(reps, self.grace)
        for r in list(reps):
            fresh = self._make_replica(node, r.index, r.ports)
            fresh.restarts = r.restarts + 1
            self._spawn(node, fresh)
            reps[r.index] = fresh
        self._save_state()

    # --- faults (``Backend.kill_node`` ...): signals to the replica's process group ----------
    def kill_node(self, node: str, replica: int | None = None) -> None:
        with self._lock:
            for r in self._fault_replicas(node, replica):
                killed = processes.kill_replica(r, self.session)
                if not killed and r.proc is not None and r.exit_code() is None:
                    raise DeployError(
                        f"local: cannot kill node {node!r} replica {r.index}: its process is no"
                        " longer proven this session's (marker and start time)"
                    )
                self._paused.discard((node, r.index))

    def pause_node(self, node: str) -> None:
        with self._lock:
            for r in self._fault_replicas(node, None):
                if not processes.signal_replica(r, self.session, signal.SIGSTOP):
                    raise DeployError(
                        f"local: cannot pause node {node!r} replica {r.index}: its process group is"
                        " gone or no longer proven this session's (marker and start time)"
                    )
                self._paused.add((node, r.index))

    def resume_node(self, node: str) -> None:
        with self._lock:
            for r in self._fault_replicas(node, None):
                processes.signal_replica(r, self.session, signal.SIGCONT)
                self._paused.discard((node, r.index))

    def disconnect_node(self, node: str) -> None:
        raise self.fault_unsupported("disconnect", "its processes share this host's network")

    def reconnect_node(self, node: str) -> None:
        raise self.fault_unsupported("disconnect", "its processes share this host's network")

    def _fault_replicas(self, node: str, replica: int | None) -> list[_Replica]:
        self._node(node)
        reps = self._replicas.get(node, [])
        if replica is None:
            return list(reps)
        if not 0 <= replica < len(reps):
            raise DeployError(f"local backend: node {node!r} has {len(reps)} replicas, no replica {replica}")
        return [reps[replica]]

    def _set_node(self, node: Node) -> None:
        super()._set_node(node)
        self._nodes[node.name] = node

    def describe(self) -> str:
        lines = [f"backend local, run id {self.run_id}, logs in {self.rundir}"]
        for s in self.status():
            try:
                where = self.endpoint(s.node, replica=s.replica).url()
            except DeployError:
                where = "-"
            lines.append(f"  {s.node}[{s.replica}] {s.state} pid {s.id} {where}")
        lines.append(f"remove with `bannou-env clean --run-id {self.run_id}`")
        return "\n".join(lines)

    # --- internals ------------------------------------------------------------------------
    def _node(self, name: str) -> Node:
        n = self._nodes.get(name)
        if n is None:
            raise DeployError(
                f"local backend: no node {name!r} is deployed; deployed nodes: "
                f"{', '.join(self._nodes) or '(none)'}"
            )
        return n

    def _remove_data(self, names: Sequence[str]) -> None:
        """What stopped infrastructure replicas kept on disk (MySQL datadirs) goes with them."""
        for name in names:
            node = self._nodes.get(name)
            if node is not None and node.kind == "infrastructure":
                for r in self._replicas.get(name, []):
                    remove_data(node, r.ports, self.rundir)

    def _forget(self, name: str, keep_ports: bool = False) -> None:
        for r in self._replicas.pop(name, []):
            if not keep_ports:
                for port in r.ports.values():
                    release(port)
        self._nodes.pop(name, None)

    def _command(self, node: Node) -> list[str]:
        if node.command:
            return list(node.command)
        local = self.options.local_command
        if local:
            return shlex.split(local) if isinstance(local, str) else list(local)
        return list(REFERENCE_COMMAND)

    def _make_replica(self, node: Node, index: int, ports: Mapping[int, int] | None = None) -> _Replica:
        ports = dict(ports or {})
        for p in node.ports:
            if p not in ports:
                ports[p] = free_port(HOST)
        env = dict(os.environ)
        env.update(node.environment)
        env.setdefault("PYTHONUNBUFFERED", "1")
        if is_ingress(node) and node.command is None:
            upstreams = self._ingress_upstreams(node)
            argv, infra_env = ingress_command(node, ports, self.rundir, upstreams, self._preset())
            env.update(infra_env)
        elif node.kind == "infrastructure" and node.command is None:
            argv, infra_env = infra_command(node, ports, self.rundir, self._preset())
            env.update(infra_env)
        else:
            argv = self._command(node)
            env["BANNOU_APP_ID"] = node.environment.get("BANNOU_APP_ID", node.app_id)
            if "BANNOU_NODE_NAME" not in node.environment:
                env["BANNOU_NODE_NAME"] = f"{node.name}-{index}"
            if node.http_port is not None:
                env["HTTP_WEB_HOST_PORT"] = str(ports[node.http_port])
            env["BANNOU_BIND_HOST"] = HOST
        for container_port, host_port in ports.items():
            env[f"PORT_{container_port}"] = str(host_port)
        env[RUN_ID_ENV] = self.run_id
        env[SESSION_ENV] = self.session
        env["PYTEST_BANNOU_NODE"] = node.name
        log_path = self.rundir / f"{node.name}-{index}.log"
        return _Replica(node.name, index, argv, env, ports, log_path)

    def _ingress_upstreams(self, node: Node) -> list[str]:
        """``127.0.0.1:PORT`` of every replica of the node the ingress fronts: the node named in
        its ``BANNOU_INGRESS_UPSTREAM`` (with that container port), else ``ingress_target``."""
        name, port = "", None
        if node.environment.get(UPSTREAM_ENV):
            name, port = split_upstream(node.environment[UPSTREAM_ENV])
        target = self._nodes.get(name)
        if target is None:
            running = Topology(preset=self._preset(), nodes=tuple(self._nodes.values()))
            target = ingress_target(self.topology or running) or ingress_target(running)
            port = None
        if target is None or not self._replicas.get(target.name):
            raise DeployError(
                f"local backend: preset {self._preset()!r}: ingress {node.name!r} has no bannou node to "
                f"proxy to ({UPSTREAM_ENV}={node.environment.get(UPSTREAM_ENV, '')!r}); start it after "
                "the node (dependsOn) or name a running node there"
            )
        wanted = port if port in target.ports else target.http_port
        return [f"{HOST}:{r.ports[wanted]}" for r in self._replicas[target.name] if wanted in r.ports]

    def _spawn(self, node: Node, r: _Replica) -> None:
        self.rundir.mkdir(parents=True, exist_ok=True)
        try:
            processes.spawn(r)
        except OSError as exc:
            processes.stop_many([r], self.grace)
            raise DeployError(
                f"local backend: cannot start node {node.name!r} with {shlex.join(r.argv)}: {exc}; "
                "fix the node's command in the preset or the ini option bannou_local_command"
            ) from None

    def _start_nodes(
        self, nodes: list[Node], deadline: float, old_ports: Mapping[str, list[dict[int, int]]] | None = None
    ) -> None:
        """Start ``nodes`` in parallel; a node starts once the nodes it depends on accept connections."""
        old_ports = old_ports or {}
        pending = {n.name: n for n in nodes}
        for n in nodes:
            self._nodes[n.name] = n
        known = set(self._nodes)
        for n in nodes:
            missing = [d for d in n.depends_on if d not in known]
            if missing:
                raise DeployError(
                    f"local backend: node {n.name!r} depends on {', '.join(missing)}, which "
                    f"{'is' if len(missing) == 1 else 'are'} not in preset {self._preset()!r}"
                )
        _check_cycles(nodes)
        # registered before the first spawn: a session killed between a spawn and the next save
        # still leaves a state file naming its marker, and clean() finds the process by it
        self._save_state()
        ready: set[str] = set()
        while pending:
            progressed = False
            for name, n in list(pending.items()):
                if all(self._dependency_ready(d, ready, n.name) for d in n.depends_on):
                    previous = old_ports.get(name, [])
                    reps: list[_Replica] = []
                    self._replicas[name] = reps  # registered first: a failed spawn leaves the rest tracked
                    for i in range(n.replicas):
                        r = self._make_replica(n, i, previous[i] if i < len(previous) else None)
                        self._spawn(n, r)
                        reps.append(r)
                    del pending[name]
                    progressed = True
            self._save_state()
            if pending and not progressed:
                if time.monotonic() >= deadline:
                    waiting = ", ".join(f"{k} (needs {', '.join(v.depends_on)})" for k, v in pending.items())
                    raise DeployError(
                        f"local backend: preset {self._preset()!r}: deadline passed while nodes waited for "
                        f"their dependencies: {waiting}"
                    )
                time.sleep(0.02)

    def _dependency_ready(self, dep: str, ready: set[str], dependent: str) -> bool:
        if dep in ready:
            return True
        reps = self._replicas.get(dep)
        if reps is None:
            return False  # not started yet
        for r in reps:
            code = r.exit_code()
            if code is not None:
                raise NodeNotReady(
                    self._preset(),
                    dep,
                    f"exited with code {code} before {dependent!r}, which depends on it, could start",
                    self.logs(dep, tail=30),
                    self.name,
                )
        node = self._nodes[dep]
        if node.http_port is not None and not all(processes.accepts(r.ports[node.http_port]) for r in reps):
            return False
        ready.add(dep)
        return True

    def _scale_replicas(self, node: Node, count: int) -> None:
        reps = self._replicas.setdefault(node.name, [])
        if count < len(reps):
            extra = reps[count:]
            processes.stop_many(extra, self.grace)
            for r in extra:
                for port in r.ports.values():
                    release(port)
            del reps[count:]
        for i in range(len(reps), count):
            r = self._make_replica(node, i)
            self._spawn(node, r)
            reps.append(r)

    def _preset(self) -> str:
        return self.topology.preset if self.topology else ""

    def _save_state(self) -> None:
        replicas = [r.to_json() for reps in self._replicas.values() for r in reps if r.proc]
        data = {
            "backend": self.name,
            "run_id": self.run_id,
            "session": self.session,
            "owner_pid": os.getpid(),
            "owner_start": processes.start_time(os.getpid()),
            "preset": self._preset(),
            "workdir": str(self.options.workdir),
            "state_file": str(self.state_file),
            "index_file": str(self.index_file),
            "replicas": replicas,
        }
        state.write_state(data, (self.state_file, self.index_file))


def _log_files(rundir: Path, node: str) -> list[Path]:
    pattern = re.compile(rf"^{re.escape(node)}-(\d+)\.log$")
    found = [(int(m.group(1)), p) for p in rundir.glob("*.log") if (m := pattern.match(p.name))]
    return [p for _, p in sorted(found)]


def _check_cycles(nodes: Sequence[Node]) -> None:
    graph = {n.name: [d for d in n.depends_on] for n in nodes}
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2 or name not in graph:
            return
        if state.get(name) == 1:
            cycle = [*path[path.index(name) :], name]
            raise DeployError(f"local backend: dependsOn cycle between nodes: {' -> '.join(cycle)}")
        state[name] = 1
        for d in graph[name]:
            visit(d, [*path, name])
        state[name] = 2

    for name in graph:
        visit(name, [])
