"""The local backend: every node replica is a process group on this machine.

The embedded default, needing nothing installed: bannou nodes run ``node.command``, else the ini
``bannou_local_command`` (how a bannou developer runs ``dotnet bannou-service.dll``), else the
reference node. Each replica gets the node's environment over a copy of ``os.environ``, its own
free ports on 127.0.0.1 (``HTTP_WEB_HOST_PORT`` for the HTTP port, ``PORT_{containerport}`` for the
others) and a log file under ``<workdir>/local``. Redis and RabbitMQ run from their server
binaries when installed; other infrastructure needs a Docker backend.

Nothing leaks: every process carries ``PYTEST_BANNOU_RUN_ID`` in its environment, and a state
file (in the run directory and in a machine-wide index) records PIDs, process groups, ports, the
run id and the owner PID, so ``LocalBackend.clean()`` can remove what a killed session left.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..._support.files import atomic_write
from ..._support.pids import pid_alive
from ...errors import BackendUnavailable, DeployError, NodeNotReady
from ...topology.diff import Action, Transition, diff
from ...topology.model import Node, Topology
from ..base import Availability, Backend, BackendOptions, Endpoint, ExecResult, ReplicaStatus
from .ports import free_port, release

RUN_ID_ENV = "PYTEST_BANNOU_RUN_ID"  # in every process this backend starts
# one value per backend instance (xdist workers may share a run id): what teardown/clean match
SESSION_ENV = "PYTEST_BANNOU_LOCAL_SESSION"
STATE_DIR_ENV = "BANNOU_LOCAL_STATE_DIR"  # overrides the machine-wide index directory
REFERENCE_COMMAND = (sys.executable, "-m", "pytest_bannou.reference.node")
DEFAULT_GRACE = 3.0
KILL_WAIT = 2.0  # after SIGKILL, how long to wait for the kernel to remove the processes
HOST = "127.0.0.1"
# RabbitMQ needs an epmd; a private one in the broker's process group (not a daemon that would
# outlive teardown): this launcher starts it, then becomes the broker (argv: epmd port, broker).
WITH_EPMD = (
    "import os, subprocess, sys; port = sys.argv[1]; os.environ['ERL_EPMD_PORT'] = port; "
    "subprocess.Popen(['epmd', '-port', port, '-address', '127.0.0.1']); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)
INSTALL_HINT = {
    "redis": "apt-get install redis-server, or brew install redis",
    "rabbitmq": "apt-get install rabbitmq-server, or brew install rabbitmq",
}


def state_index_dir() -> Path:
    """Where every local session registers its state file, so ``clean`` finds them all."""
    override = os.environ.get(STATE_DIR_ENV)
    if override:
        return Path(override)
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"pytest-bannou-{os.getuid()}" / "local-state"


@dataclass
class _Replica:
    """One running (or exited) replica: its processes, ports and log file."""

    node: str
    index: int
    argv: list[str]
    env: dict[str, str]
    ports: dict[int, int]  # container port -> host port
    log_path: Path
    proc: subprocess.Popen | None = None  # leader of its own session and process group
    restarts: int = 0

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    @property
    def pgid(self) -> int:
        return self.pid

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def to_json(self) -> dict:
        return {
            "node": self.node,
            "replica": self.index,
            "pid": self.pid,
            "pgid": self.pgid,
            "ports": {str(k): v for k, v in self.ports.items()},
            "log": str(self.log_path),
            "argv": self.argv,
        }


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

    # --- capability -----------------------------------------------------------------------
    @classmethod
    def available(cls) -> Availability:
        return Availability(True)

    # --- lifecycle ------------------------------------------------------------------------
    def deploy(self, topology: Topology, deadline: float) -> None:
        with self._lock:
            if self.topology is not None:
                self.apply(diff(self.topology, topology), deadline)
                return
            for node in topology.nodes:
                self._check_runnable(node, topology.preset)
            self.rundir.mkdir(parents=True, exist_ok=True)
            self.topology = topology
            self._start_nodes(list(topology.nodes), deadline)

    def apply(self, transition: Transition, deadline: float) -> None:
        with self._lock:
            new = transition.new
            if new is None:
                self.teardown()
                return
            # diff against what actually runs here, so a transition computed from another
            # starting point still ends in exactly ``new``
            running = Topology(preset=self._preset(), nodes=tuple(self._nodes.values()))
            plan = diff(running, new)
            for c in plan.of(Action.START, Action.RECREATE):
                self._check_runnable(c.new, new.preset)
            self.rundir.mkdir(parents=True, exist_ok=True)
            removed = [c.name for c in plan.of(Action.STOP)]
            recreated = [c.name for c in plan.of(Action.RECREATE)]
            old_ports = {name: [r.ports for r in self._replicas.get(name, [])] for name in recreated}
            self._stop_many([r for name in removed + recreated for r in self._replicas.get(name, [])])
            for name in removed + recreated:
                self._forget(name, keep_ports=name in recreated)
            for c in plan.of(Action.SCALE):
                self._nodes[c.name] = c.new
                self._scale_replicas(c.new, c.new.replicas)
            self.topology = new
            self._start_nodes([c.new for c in plan.of(Action.START, Action.RECREATE)], deadline, old_ports)
            self._save_state()

    def teardown(self) -> None:
        with self._lock:
            everything = [r for reps in self._replicas.values() for r in reps]
            self._stop_many(everything)
            _kill_marked(self.session, self.grace, exclude={os.getpid()})
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
        candidates = list(state_index_dir().glob("*.json"))
        if options is not None:
            candidates += list((Path(options.workdir) / "local").glob("state*.json"))
        removed: list[str] = []
        seen: set[Path] = set()
        for path in candidates:
            if path in seen or not path.exists():
                continue
            seen.add(path)
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            rid = data.get("run_id", "")
            if run_id is not None and rid != run_id:
                continue
            if run_id is None and _owner_alive(data):
                continue
            removed += _clean_session(data)
            for p in dict.fromkeys(
                [path, Path(data.get("state_file", path)), Path(data.get("index_file", path))]
            ):
                seen.add(p)
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    removed.append(f"local: removed state file {p}")
        return removed

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
        try:
            proc = subprocess.Popen(
                list(argv),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            return ExecResult(127, f"cannot run {argv[0]!r}: {exc}")
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            try:
                out, _ = proc.communicate(timeout=KILL_WAIT)
            except subprocess.TimeoutExpired:  # a descendant outside the group holds the pipe
                proc.stdout.close()
                proc.wait()
                out = b""
            return ExecResult(124, out.decode(errors="replace") + f"\n(timed out after {timeout}s)")
        return ExecResult(proc.returncode, out.decode(errors="replace"))

    # --- changes --------------------------------------------------------------------------
    def restart(self, node: str, environment: Mapping[str, str] | None = None) -> None:
        with self._lock:
            n = self._node(node)
            if environment:
                n = replace(n, environment={**n.environment, **environment})
                self._replace_node(n)
            reps = self._replicas.get(node, [])
            self._stop_many(reps)
            for r in reps:
                fresh = self._make_replica(n, r.index, r.ports)
                fresh.restarts = r.restarts + 1
                self._spawn(n, fresh)
                reps[r.index] = fresh
            self._save_state()

    def scale(self, node: str, replicas: int) -> None:
        if replicas < 0:
            raise DeployError(
                f"local backend: cannot scale node {node!r} to {replicas} replicas (must be >= 0)"
            )
        with self._lock:
            n = replace(self._node(node), replicas=replicas)
            self._replace_node(n)
            self._scale_replicas(n, replicas)
            self._save_state()

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

    def _replace_node(self, node: Node) -> None:
        self._nodes[node.name] = node
        if self.topology is not None:
            self.topology = self.topology.with_nodes(
                node if n.name == node.name else n for n in self.topology.nodes
            )

    def _forget(self, name: str, keep_ports: bool = False) -> None:
        for r in self._replicas.pop(name, []):
            if not keep_ports:
                for port in r.ports.values():
                    release(port)
        self._nodes.pop(name, None)

    def _check_runnable(self, node: Node, preset: str) -> None:
        """Fail before starting anything when an infrastructure node cannot run here."""
        if node.kind == "infrastructure" and node.command is None:
            self._infra_command(node, {p: 0 for p in node.ports}, preset)

    def _command(self, node: Node) -> list[str]:
        if node.command:
            return list(node.command)
        local = self.options.local_command
        if local:
            return shlex.split(local) if isinstance(local, str) else list(local)
        return list(REFERENCE_COMMAND)

    def _infra_command(
        self, node: Node, ports: Mapping[int, int], preset: str = ""
    ) -> tuple[list[str], dict[str, str]]:
        kind = (node.infra_type or node.name).lower()
        port = next(iter(ports.values()), 0)
        if kind == "redis" and shutil.which("redis-server"):
            workdir = self.rundir / f"{node.name}-data"
            argv = ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
            return [*argv, "--dir", str(workdir)], {}
        rabbit = _rabbitmq_server()
        if kind == "rabbitmq" and rabbit and shutil.which("epmd"):
            base = self.rundir / f"{node.name}-rabbitmq"
            env = {
                "RABBITMQ_NODE_PORT": str(port),
                "RABBITMQ_NODE_IP_ADDRESS": HOST,
                "RABBITMQ_NODENAME": f"bannou-{os.getpid()}-{port}@localhost",
                "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
                "RABBITMQ_LOG_BASE": str(base / "log"),
                "RABBITMQ_LOGS": "-",
                "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
                "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
                "RABBITMQ_DIST_PORT": str(free_port() if port else 0),
                "HOME": str(base),
            }
            return [sys.executable, "-c", WITH_EPMD, str(free_port(HOST) if port else 0), rabbit], env
        install = INSTALL_HINT.get(kind)
        how = f"install it ({install}) or run it" if install else "run it"
        raise BackendUnavailable(
            f"local backend: preset {preset or self._preset()!r}: infrastructure node {node.name!r} ({kind}) "
            "cannot run as a local process: "
            f"{how} with a Docker backend (--bannou-backend compose)"
        )

    def _make_replica(self, node: Node, index: int, ports: Mapping[int, int] | None = None) -> _Replica:
        ports = dict(ports or {})
        for p in node.ports:
            if p not in ports:
                ports[p] = free_port(HOST)
        env = dict(os.environ)
        env.update(node.environment)
        env.setdefault("PYTHONUNBUFFERED", "1")
        if node.kind == "infrastructure" and node.command is None:
            argv, infra_env = self._infra_command(node, ports)
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

    def _spawn(self, node: Node, r: _Replica) -> None:
        self.rundir.mkdir(parents=True, exist_ok=True)
        if r.log_path.exists() and r.log_path.stat().st_size:
            os.replace(r.log_path, r.log_path.with_suffix(".previous.log"))
        for d in ("RABBITMQ_MNESIA_BASE", "RABBITMQ_LOG_BASE"):
            if d in r.env:
                Path(r.env[d]).mkdir(parents=True, exist_ok=True)
        if "--dir" in r.argv:
            Path(r.argv[r.argv.index("--dir") + 1]).mkdir(parents=True, exist_ok=True)
        with open(r.log_path, "ab") as log:
            common = {"stdin": subprocess.DEVNULL, "stdout": log, "stderr": subprocess.STDOUT}
            try:
                r.proc = subprocess.Popen(r.argv, env=r.env, start_new_session=True, **common)
            except OSError as exc:
                self._stop_many([r])
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
        if node.http_port is not None and not all(_accepts(r.ports[node.http_port]) for r in reps):
            return False
        ready.add(dep)
        return True

    def _scale_replicas(self, node: Node, count: int) -> None:
        reps = self._replicas.setdefault(node.name, [])
        if count < len(reps):
            extra = reps[count:]
            self._stop_many(extra)
            for r in extra:
                for port in r.ports.values():
                    release(port)
            del reps[count:]
        for i in range(len(reps), count):
            r = self._make_replica(node, i)
            self._spawn(node, r)
            reps.append(r)

    def _stop_many(self, replicas: Iterable[_Replica]) -> None:
        """SIGTERM every group at once, SIGKILL what is left after the grace period."""
        replicas = [r for r in replicas if r.proc]
        if not replicas:
            return
        for r in replicas:
            _signal_group(r.pgid, signal.SIGTERM)
        grace_end = time.monotonic() + self.grace
        pending = replicas
        while pending:
            for r in pending:
                r.proc.poll()
            alive = _live_groups({r.pgid for r in pending})
            pending = [r for r in pending if r.pgid in alive]
            if not pending or time.monotonic() >= grace_end:
                break
            time.sleep(0.005)
        for r in pending:
            _signal_group(r.pgid, signal.SIGKILL)
        kill_end = time.monotonic() + KILL_WAIT
        for r in replicas:
            with contextlib.suppress(subprocess.TimeoutExpired):
                r.proc.wait(timeout=max(0.0, kill_end - time.monotonic()))

    def _preset(self) -> str:
        return self.topology.preset if self.topology else ""

    def _save_state(self) -> None:
        replicas = [r.to_json() for reps in self._replicas.values() for r in reps if r.proc]
        data = {
            "backend": self.name,
            "run_id": self.run_id,
            "session": self.session,
            "owner_pid": os.getpid(),
            "owner_start": _start_time(os.getpid()),
            "preset": self._preset(),
            "workdir": str(self.options.workdir),
            "state_file": str(self.state_file),
            "index_file": str(self.index_file),
            "replicas": replicas,
        }
        raw = json.dumps(data, indent=1)
        for path in (self.state_file, self.index_file):
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, raw)


# --- process helpers (Linux /proc where available, plain signals elsewhere) ------------------


def _rabbitmq_server() -> str | None:
    # Debian's /usr/sbin/rabbitmq-server re-executes itself as user rabbitmq when run as root;
    # the script behind it runs as the caller, with our environment.
    direct = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
    if direct.exists():
        return str(direct)
    return shutil.which("rabbitmq-server")


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


def _signal_group(pgid: int, sig: int) -> None:
    if pgid <= 1:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (index 0 = state)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _start_time(pid: int) -> str | None:
    stat = _proc_stat(pid)
    return stat[19] if stat else None


def _live_groups(pgids: set[int]) -> set[int]:
    """Which of ``pgids`` still have a process that is not a zombie."""
    if not Path("/proc/self/stat").exists():
        alive = set()
        for pgid in pgids:
            try:
                os.killpg(pgid, 0)
                alive.add(pgid)
            except (ProcessLookupError, PermissionError):
                pass
        return alive
    alive = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(int(entry.name))
        if stat and stat[0] != "Z" and int(stat[2]) in pgids:
            alive.add(int(stat[2]))
    return alive


def _marked_pids(session: str) -> list[int]:
    """Live processes whose environment carries this backend session (ours, so safe to kill)."""
    marker = f"{SESSION_ENV}={session}".encode()
    found = []
    for entry in os.scandir("/proc") if Path("/proc/self/environ").exists() else ():
        if not entry.name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry.name}/environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            stat = _proc_stat(int(entry.name))
            if stat and stat[0] != "Z":
                found.append(int(entry.name))
    return found


def _kill_marked(session: str, grace: float, exclude: set[int]) -> list[int]:
    """SIGTERM then SIGKILL every process of ``session`` (also descendants that left their group)."""
    pids = [p for p in _marked_pids(session) if p not in exclude]
    if not pids:
        return []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + grace
    while time.monotonic() < end and any(p in pids for p in _marked_pids(session)):
        time.sleep(0.01)
    for pid in _marked_pids(session):
        if pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    return pids


def _owner_alive(data: Mapping) -> bool:
    pid = int(data.get("owner_pid") or 0)
    if not pid_alive(pid):
        return False
    recorded = data.get("owner_start")
    return recorded is None or _start_time(pid) in (None, recorded)


def _clean_session(data: Mapping) -> list[str]:
    """Stop what a session's state file lists: only process groups that still hold a process
    carrying the session's marker (a recycled PID is never signalled), then stray descendants."""
    run_id = data.get("run_id", "")
    session = data.get("session", "")
    marked = set(_marked_pids(session)) if session and Path("/proc/self/environ").exists() else None
    targets = []
    for rep in data.get("replicas", []):
        pgid = int(rep.get("pgid") or 0)
        if pgid <= 1:
            continue
        if marked is not None:
            if not any((st := _proc_stat(pid)) and int(st[2]) == pgid for pid in marked):
                continue
        elif not _live_groups({pgid}):
            continue
        targets.append((pgid, rep))
    for pgid, _ in targets:
        _signal_group(pgid, signal.SIGTERM)
    end = time.monotonic() + DEFAULT_GRACE
    while time.monotonic() < end and _live_groups({pgid for pgid, _ in targets}):
        time.sleep(0.01)
    lines = []
    for pgid, rep in targets:
        _signal_group(pgid, signal.SIGKILL)
        lines.append(
            f"local: stopped node {rep.get('node')} replica {rep.get('replica')} "
            f"(process group {pgid}) of run {run_id}"
        )
    for pid in _kill_marked(session, DEFAULT_GRACE, exclude={os.getpid()}) if session else ():
        lines.append(f"local: killed leftover process {pid} of run {run_id}")
    return lines


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
