"""The lifecycle of a session's environments: deploy, wait ready, transition, teardown.

``EnvironmentManager`` owns the session's one backend instance and the environment currently
deployed on it. ``activate(key, topology)`` makes that environment current: the first one is
deployed, the next ones are reached by applying the topology diff (or by teardown + deploy with
``transition="full"``). A failed activation tears down what was started and is remembered per
key, so the remaining tests of that environment fail at once with the same message while the
other environments still run. Teardown runs at session end, on SIGTERM (turned into
``KeyboardInterrupt`` so the caller's normal interrupt path runs) and, as a last resort, at exit.

No pytest import: the plugin and ``bannou-env deploy`` both drive this module.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._support.ci import CI_JOBS, ci_job_id
from .._support.files import atomic_write
from ..backends.base import Backend, BackendOptions, Endpoint, ReplicaStatus
from ..backends.registry import resolve
from ..errors import BannouError, DeployError
from ..topology.diff import Action, Transition, diff
from ..topology.model import Topology

Progress = Callable[[str, bool], None]  # (text, done): done False starts a line, True ends it
"""Progress callback: ``("deploying x on local: 3 nodes", False)`` then ``("ready in 1.4 s", True)``."""

# the CI job's variables: one table in _support.ci (BANNOU_CI_JOB_ID, GitHub, GitLab, Buildkite, Jenkins)
CI_JOB_VARS = tuple(row.id_vars for row in CI_JOBS)


# what new_run_id makes, and so the only run ids the CLI takes: a run id names a directory
# under the runs root and labels engine resources, it must never be a path
RUN_ID_PATTERN = re.compile(r"bannou-[0-9a-f]{8}(?:-[a-z0-9-]{1,40})?")
RUN_ID_EXAMPLE = "bannou-1a2b3c4d (or bannou-1a2b3c4d-JOB in CI)"


class RunIdError(BannouError):
    """A run id that is not one the plugin makes, or whose directory leaves the runs root."""


def new_run_id(environ: Mapping[str, str] | None = None) -> str:
    """``bannou-`` + 8 hex chars, + the CI job id when running in CI (so leaks name their job).
    Always matches ``RUN_ID_PATTERN``."""
    environ = os.environ if environ is None else environ
    run_id = f"bannou-{secrets.token_hex(4)}"
    suffix = ci_job_id(environ)
    if suffix:
        safe = "".join(c if c.isascii() and c.isalnum() else "-" for c in suffix.lower())
        safe = safe.strip("-")[:40].strip("-")
        if safe:
            run_id += f"-{safe}"
    return run_id


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is one ``new_run_id`` could have made; ``RunIdError`` otherwise."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise RunIdError(
            f"{run_id!r} is not a run id: run ids look like {RUN_ID_EXAMPLE};"
            " `bannou-env status` lists the runs left running"
        )
    return run_id


def _runs_root_path() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else os.getlogin()
    return Path(tempfile.gettempdir()) / f"pytest-bannou-{uid}"


def runs_root() -> Path:
    """Where every session's run directory lives (per user, so users never collide).

    Created 0700; refused (``BannouError`` saying what to do) when another user owns it or
    others may write to it: state found there is only trusted when this user wrote it."""
    root = _runs_root_path()
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o700)
    _check_private(root)
    return root


def _check_private(root: Path) -> None:
    """Refuse a runs root that is not this user's alone; tighten one of ours to 0700."""
    if not hasattr(os, "getuid"):
        return  # no owners and modes to check (Windows): the per-user temp dir is private
    uid = os.getuid()
    move = "or point TMPDIR at a directory only you can write"
    for st in (os.lstat(root), os.stat(root)):
        if st.st_uid != uid:
            raise BannouError(
                f"runs directory {root} is owned by uid {st.st_uid}, not by you (uid {uid}): another"
                f" user may have put state there; remove it if it is yours to remove, {move}"
            )
    st = os.stat(root)
    if not stat.S_ISDIR(st.st_mode):
        raise BannouError(f"runs directory {root} is not a directory; remove it, {move}")
    if st.st_mode & 0o022:
        raise BannouError(
            f"runs directory {root} is writable by others (mode {stat.S_IMODE(st.st_mode):04o}), so"
            f" what it holds cannot be trusted: run `chmod 700 {root}` (after checking its"
            f" contents), {move}"
        )
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(root, 0o700)


def run_directory(run_id: str) -> Path:
    """The run directory of ``run_id``: directly under the runs root, also after following
    symlinks, or ``RunIdError`` (a run id is a name, never a path out of the runs root)."""
    root = _runs_root_path()
    where = f"the run directory of {run_id!r}"
    try:
        path = root / run_id
        resolved, real_root = path.resolve(), root.resolve()
    except (ValueError, OSError, TypeError) as exc:
        raise RunIdError(f"{where} cannot be used: {exc}") from None
    if not run_id or resolved.parent != real_root or resolved.name != run_id:
        raise RunIdError(
            f"{where} would be {resolved}, outside the runs directory {root} (or not its own"
            f" entry): refused; run ids look like {RUN_ID_EXAMPLE}"
        )
    return path


def run_directories() -> list[Path]:
    """The run directories under the runs root: real directories named like run ids (a symlink
    or a stray file is not a run)."""
    root = runs_root()
    out = []
    for d in sorted(root.iterdir()):
        if RUN_ID_PATTERN.fullmatch(d.name) and not d.is_symlink() and d.is_dir():
            out.append(d)
    return out


def ensure_run_directory(workdir: Path) -> Path:
    """Create ``workdir`` 0700 (checking the runs root first when it lies under it)."""
    root = _runs_root_path()
    if workdir.parent == root:
        runs_root()
    workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if hasattr(os, "getuid") and os.stat(workdir).st_uid == os.getuid():
        os.chmod(workdir, 0o700)
    return workdir


RUN_INFO = "environment.json"


def write_run_info(workdir: Path, info: Mapping[str, Any]) -> None:
    """Record what a run deployed (read by ``bannou-env status``/``logs``); 0600 in a 0700
    directory, as it names the environment."""
    ensure_run_directory(workdir)
    atomic_write(workdir / RUN_INFO, json.dumps(dict(info), indent=2, sort_keys=True))


def read_run_info(workdir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((workdir / RUN_INFO).read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class EnvRecord:
    """What happened to one environment during the session (the summary table)."""

    key: str
    preset: str
    backend: str
    activations: int = 0
    deploy_time: float | None = None  # first deploy/transition call until the engine returned
    ready_time: float | None = None  # from the start of the activation until every node was ready
    transitions: int = 0  # times this environment was reached by a diff transition
    node_restarts: int = 0
    error: str | None = None
    outcomes: dict[str, int] = field(
        default_factory=lambda: {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    )

    def merge(self, other: EnvRecord) -> None:
        """Add another process's record of the same environment (pytest-xdist workers)."""
        self.activations += other.activations
        self.transitions += other.transitions
        self.node_restarts += other.node_restarts
        for k, v in other.outcomes.items():
            self.outcomes[k] = self.outcomes.get(k, 0) + v
        times = [t for t in (self.deploy_time, other.deploy_time) if t is not None]
        self.deploy_time = max(times) if times else None
        times = [t for t in (self.ready_time, other.ready_time) if t is not None]
        self.ready_time = max(times) if times else None
        self.error = self.error or other.error


class Environment:
    """One preset deployed on the session's backend: what tests use through ``bannou_env``."""

    def __init__(self, manager: EnvironmentManager, key: str, topology: Topology) -> None:
        self._manager = manager
        self.key = key
        self.topology = topology

    def __repr__(self) -> str:
        return f"<Environment {self.key} on {self.backend} ({self.run_id})>"

    @property
    def preset(self) -> str:
        return self.topology.preset

    @property
    def backend(self) -> str:
        """The backend's name (``local``, ``compose`` ...)."""
        return self._manager.backend_name

    @property
    def run_id(self) -> str:
        return self._manager.run_id

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.topology.node_names

    @property
    def active(self) -> bool:
        """Whether this environment is the one deployed now (a later test may have moved on)."""
        return self._manager.current is self

    def _engine(self) -> Backend:
        if not self.active:
            raise DeployError(
                f"environment {self.key!r} is no longer deployed (the session moved on to "
                f"{self._manager.current.key if self._manager.current else 'nothing'}); "
                "use the bannou_env fixture of the current test"
            )
        return self._manager.backend

    def node_for(self, service_or_node: str) -> str:
        """The node that hosts a service (or the node of that name / app id)."""
        try:
            return self.topology.node_for(service_or_node).name
        except KeyError as exc:
            raise DeployError(str(exc.args[0])) from None

    @property
    def main_node(self) -> str:
        """The node requests go to by default: the one with the default app id, else the first."""
        for n in self.topology.bannou_nodes:
            if n.app_id == self.topology.default_app_id:
                return n.name
        nodes = self.topology.bannou_nodes or self.topology.nodes
        if not nodes:
            raise DeployError(f"preset {self.preset!r} has no nodes")
        return nodes[0].name

    def endpoint(self, service_or_node: str, port: int | None = None, replica: int = 0) -> Endpoint:
        return self._engine().endpoint(self.node_for(service_or_node), port, replica)

    def url(self, service_or_node: str | None = None, port: int | None = None) -> str:
        """Base URL of the node hosting ``service_or_node`` (default: the main node)."""
        return self.endpoint(service_or_node or self.main_node, port).url()

    def urls(self) -> dict[str, str]:
        """Base URL of every node that has a port."""
        out = {}
        for n in self.topology.nodes:
            if n.ports:
                with contextlib.suppress(BannouError, KeyError):
                    out[n.name] = self._engine().endpoint(n.name).url()
        return out

    def logs(self, node: str, tail: int | None = 50) -> str:
        return self._engine().logs(self.node_for(node), tail)

    def status(self) -> list[ReplicaStatus]:
        return self._engine().status()

    def status_text(self) -> str:
        return format_status(self.status())

    def restart(self, node: str, environment: Mapping[str, str] | None = None) -> None:
        """Restart a node and wait until it is ready again. New ``environment`` values recreate
        the node through the backend (an ``update-env`` change: a new configuration version)."""
        name = self.node_for(node)
        current = self.topology.node(name).environment
        if environment and any(current.get(k) != str(v) for k, v in environment.items()):
            self.update([{"action": "update-env", "nodeName": name, "environment": dict(environment)}])
            return
        self._engine().restart(name, None)
        self._manager.wait_ready(self, nodes=[name])
        self._manager.messaging.ready(self, "completed", [f"restart {name}"])

    # --- heartbeats, restart policy and live changes (pytest_bannou.messaging.session, .live) -------
    def heartbeats(self) -> dict[str, Any]:
        """app id -> last ``HeartbeatRecord`` stored in Redis by the heartbeat monitor."""
        return self._manager.messaging.heartbeats()

    def should_restart(self, node: str, now: float | None = None) -> Any:
        """bannou's restart policy for a node's app id: a ``RestartDecision`` (restart, reason)."""
        return self._manager.messaging.should_restart(self.topology.node(self.node_for(node)).app_id, now)

    def update(self, changes: Sequence[Any]) -> int:
        """Apply bannou TopologyChanges (all or nothing); returns the new configuration version."""
        from . import live

        self._engine()
        return live.update(self, changes)

    def rollback(self) -> int:
        """Return to the previous configuration version; returns it."""
        from . import live

        self._engine()
        return live.rollback(self)

    @property
    def config_version(self) -> int:
        from . import live

        return live._history(self).current

    def scale(self, node: str, replicas: int) -> None:
        """Change a node's replica count and wait until the new replicas are ready."""
        name = self.node_for(node)
        self._engine().scale(name, replicas)
        self._update_node(name, replicas=replicas)
        self._manager.wait_ready(self, nodes=[name])
        self._manager.messaging.ready(self, "completed", [f"scale {name} to {replicas}"])

    def _update_node(
        self, name: str, *, environment: Mapping[str, str] | None = None, replicas: int | None = None
    ) -> None:
        nodes = []
        for n in self.topology.nodes:
            if n.name == name:
                if environment:
                    n = replace(n, environment={**n.environment, **environment})
                if replicas is not None:
                    n = replace(n, replicas=replicas)
            nodes.append(n)
        # the environment no longer matches its preset: later transitions diff against reality
        self.topology = self.topology.with_nodes(nodes)


def format_status(statuses: Sequence[ReplicaStatus]) -> str:
    lines = []
    for s in statuses:
        extra = []
        if s.id:
            extra.append(f"id {s.id}")
        if s.exit_code is not None:
            extra.append(f"exit code {s.exit_code}")
        if s.restarts:
            extra.append(f"{s.restarts} restarts")
        if s.detail:
            extra.append(s.detail)
        lines.append(f"{s.node}[{s.replica}]: {s.state}" + (f" ({', '.join(extra)})" if extra else ""))
    return "\n".join(lines) or "(no nodes)"


class EnvironmentManager:
    """Owns the backend instance and the current environment of one session."""

    def __init__(
        self,
        backend: str,
        options: BackendOptions,
        *,
        transition: str = "diff",
        progress: Progress | None = None,
        on_ready: Callable[[Environment], None] | None = None,
        before_teardown: Callable[[Environment], None] | None = None,
        configure_backend: Callable[[BackendOptions], None] | None = None,
        messaging: Any = None,
    ) -> None:
        self.backend_request = backend
        self.options = options
        self.transition_mode = transition
        self._progress = progress
        self._on_ready = on_ready
        self._before_teardown = before_teardown
        self._configure_backend = configure_backend
        if messaging is None:  # broker/heartbeats/mapping events, active for presets with rabbitmq
            from ..messaging.session import EnvMessaging

            messaging = EnvMessaging(workdir=options.workdir)
        self.messaging = messaging
        self.backend: Backend | None = None
        self._backend_error: BannouError | None = None
        self.current: Environment | None = None
        self.records: dict[str, EnvRecord] = {}
        self.failures: dict[str, BannouError] = {}
        self._restart_base: int | None = None  # backend restarts when the current env became ready
        self._lock = threading.RLock()
        self._old_handlers: dict[int, Any] = {}
        self._atexit = False
        self._closed = False

    # --- identity ---------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        return self.options.run_id

    @property
    def backend_name(self) -> str:
        if self.backend is not None:
            return self.backend.name
        return self.backend_request

    # --- backend ----------------------------------------------------------------------------
    def _ensure_backend(self) -> Backend:
        if self.backend is not None:
            return self.backend
        if self._backend_error is not None:
            raise self._backend_error
        try:
            cls = resolve_backend(self.backend_request)
            if self._configure_backend is not None:
                self._configure_backend(self.options)
            ensure_run_directory(self.options.workdir)
            self.backend = cls(self.options)
        except BannouError as exc:
            self._backend_error = exc
            raise
        if not self._atexit:
            atexit.register(self._atexit_teardown)
            self._atexit = True
            self.install_signals()
        return self.backend

    def prepare(self) -> Backend:
        """Create the backend now (raises ``BackendUnavailable`` before any test runs)."""
        with self._lock:
            return self._ensure_backend()

    # --- activation -------------------------------------------------------------------------
    def record(self, key: str, preset: str) -> EnvRecord:
        rec = self.records.get(key)
        if rec is None:
            rec = self.records[key] = EnvRecord(key, preset, self.backend_name)
        return rec

    def activate(self, key: str, topology: Topology, ready_timeout: float | None = None) -> Environment:
        """Make ``key`` the deployed environment and return it once every node is ready.

        Raises the remembered ``BannouError`` at once if this key failed before.
        """
        with self._lock:
            if key in self.failures:
                raise self.failures[key]
            if self.current is not None and self.current.key == key:
                return self.current
            backend = self._ensure_backend()
            rec = self.record(key, topology.preset)
            rec.backend = backend.name
            timeout = ready_timeout if ready_timeout is not None else self.options.ready_timeout
            start = time.monotonic()
            deadline = start + timeout
            env = Environment(self, key, topology)
            try:
                self._switch(backend, env, rec, deadline, start)
            except BaseException as exc:
                self._fail(env, rec, exc)
                raise
            rec.activations += 1
            self._restart_base = self._restarts_now()
            rec.ready_time = time.monotonic() - start
            self._write_info()
            if self._on_ready is not None:
                self._on_ready(env)
            return env

    def _switch(
        self, backend: Backend, env: Environment, rec: EnvRecord, deadline: float, start: float
    ) -> None:
        old = self.current
        n = len(env.topology.nodes)
        nodes_text = f"{n} node{'s' * (n != 1)}"
        if old is not None and self.transition_mode == "full":
            self._teardown_current()
            old = None
        if old is None:
            self._say(f"deploying {env.key} on {backend.name}: {nodes_text}", False)
            self.current = env  # teardown on failure must know what is half-started
            base = self.messaging.prepare(backend, None, env, deadline)  # may start infra first
            if base is None:
                backend.deploy(env.topology, deadline)
            else:
                backend.apply(diff(base, env.topology), deadline)
            rec.deploy_time = time.monotonic() - start
            self._wait(backend, env, deadline, None)
            self.messaging.ready(env, "completed")
            self._say(f"ready in {time.monotonic() - start:.1f} s", True)
            return
        base = self.messaging.prepare(backend, old.topology, env, deadline)
        transition = diff(base or old.topology, env.topology)
        self._collect_restarts(old)
        self._say(f"transition to {env.key}: {transition.summary()}", False)
        self.current = env
        if not transition.is_noop:
            backend.apply(transition, deadline)
        rec.deploy_time = time.monotonic() - start
        rec.transitions += 1
        self._wait(backend, env, deadline, changed_nodes(transition))
        self.messaging.ready(env, "topology-changed", [transition.summary()])
        self._say(f"ready in {time.monotonic() - start:.1f} s", True)

    def _wait(self, backend: Backend, env: Environment, deadline: float, nodes: list[str] | None) -> None:
        from ..health import wait as health

        if nodes is not None and not nodes:
            return
        health.wait_ready(backend, env.topology, deadline, nodes=nodes)

    def wait_ready(
        self, env: Environment, nodes: list[str] | None = None, timeout: float | None = None
    ) -> None:
        """Wait until ``nodes`` of the current environment are ready (after restart/scale)."""
        timeout = timeout if timeout is not None else self.options.ready_timeout
        self._wait(self._ensure_backend(), env, time.monotonic() + timeout, nodes)

    def _fail(self, env: Environment, rec: EnvRecord, exc: BaseException) -> None:
        """Tear down after a failed activation; remember a user-facing failure for the key."""
        if isinstance(exc, BannouError):
            rec.error = exc.message
            self.failures[env.key] = exc
        elif not isinstance(exc, KeyboardInterrupt | SystemExit):
            err = DeployError(f"environment {env.key!r} on {self.backend_name}: {type(exc).__name__}: {exc}")
            rec.error = err.message
            self.failures[env.key] = err
        self.messaging.failed(env, exc)
        start = time.monotonic()
        try:
            self._teardown_current(quiet=True)
        finally:
            self._say(f"FAILED (torn down in {time.monotonic() - start:.1f} s)", True)

    # --- teardown ---------------------------------------------------------------------------
    def _restarts_now(self) -> int:
        if self.backend is None:
            return 0
        try:
            return sum(s.restarts for s in self.backend.status())
        except Exception:
            return 0

    def _collect_restarts(self, env: Environment) -> None:
        """Add the node restarts seen while ``env`` was current to its record (once)."""
        rec = self.records.get(env.key)
        if rec is None or self._restart_base is None:
            return
        rec.node_restarts += max(0, self._restarts_now() - self._restart_base)
        self._restart_base = None

    def _teardown_current(self, quiet: bool = False) -> None:
        env, backend = self.current, self.backend
        if backend is None:
            return
        start = time.monotonic()
        label = env.key if env is not None else "environment"
        if env is not None:
            self._collect_restarts(env)
            if self._before_teardown is not None:
                with contextlib.suppress(Exception):
                    self._before_teardown(env)
        if not quiet:
            self._say(f"teardown {label}", False)
        self.messaging.stop()  # before the broker it talks to goes away
        try:
            backend.teardown()
        finally:
            self.current = None
            if not quiet:
                self._say(f"{time.monotonic() - start:.1f} s", True)

    def teardown(self, keep: bool = False, remove_workdir: bool = False) -> Environment | None:
        """End of session: tear the current environment down (or, with ``keep``, leave it running
        and return it). ``remove_workdir`` also deletes the run directory (node logs) once
        everything is down. Idempotent."""
        with self._lock:
            if self._closed:
                self.restore_signals()
                return None
            self._closed = True
            self.shield_signals()  # a SIGTERM/SIGINT now must not cut the teardown short
            try:
                return self._teardown(keep, remove_workdir)
            finally:
                self.restore_signals()

    def _teardown(self, keep: bool, remove_workdir: bool) -> Environment | None:
        if keep and self.current is not None:
            from . import live  # its configuration versions, for bannou-env update/rollback

            env = self.current
            self.messaging.keep(env, lambda workdir: live.save_history(workdir, live._history(env)))
            self._collect_restarts(self.current)
            self._write_info(kept=True)
            return self.current
        if self.current is not None or self.backend is not None:
            try:
                self._teardown_current()
            finally:
                self._remove_info()
        if remove_workdir:
            shutil.rmtree(self.options.workdir, ignore_errors=True)
        return None

    def _atexit_teardown(self) -> None:
        if not self._closed:
            with contextlib.suppress(Exception):
                self.teardown()

    # --- run info ---------------------------------------------------------------------------
    def _write_info(self, kept: bool = False) -> None:
        env = self.current
        if env is None:
            return
        with contextlib.suppress(OSError):
            write_run_info(
                self.options.workdir,
                {
                    "run_id": self.run_id,
                    "backend": self.backend_name,
                    "environment": env.key,
                    "preset": env.preset,
                    "nodes": list(env.nodes),
                    "urls": env.urls(),
                    "owner_pid": os.getpid(),
                    "kept": kept,
                    "updated": time.time(),
                    "preset_hash": env.topology.preset_hash,
                    **({"attach": _attach_info(self.backend, env)} if kept and self.backend else {}),
                },
            )

    def _remove_info(self) -> None:
        with contextlib.suppress(OSError):
            (self.options.workdir / RUN_INFO).unlink()

    # --- signals ----------------------------------------------------------------------------
    def install_signals(self) -> None:
        """SIGTERM -> ``KeyboardInterrupt`` (the caller's interrupt path tears down); SIGINT is
        already a ``KeyboardInterrupt``. Only from the main thread; restored at teardown."""
        if threading.current_thread() is not threading.main_thread():
            return
        sigs = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
        for sig in sigs:
            with contextlib.suppress(ValueError, OSError):
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)

    def shield_signals(self) -> None:
        """During teardown: SIGINT/SIGTERM/SIGHUP are ignored (the process is already on its way
        out, and an interrupted teardown is what leaks); ``restore_signals`` undoes it."""
        if threading.current_thread() is not threading.main_thread():
            return
        sigs = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
        for sig in sigs:
            with contextlib.suppress(ValueError, OSError):
                previous = signal.signal(sig, signal.SIG_IGN)
                self._old_handlers.setdefault(sig, previous)

    def restore_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, handler in self._old_handlers.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(sig, handler)
        self._old_handlers.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        # once: a second SIGTERM during teardown must not interrupt the teardown itself
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signum, signal.SIG_IGN)
        raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")

    # --- progress ---------------------------------------------------------------------------
    def _say(self, text: str, done: bool) -> None:
        if self._progress is not None:
            with contextlib.suppress(Exception):
                self._progress(text, done)


def _attach_info(backend: Backend, env: Environment) -> dict[str, Any]:
    """Endpoints, replica ids and log files of a kept environment (``--bannou-reuse``)."""
    from .sharing import describe

    try:
        return describe(backend, env)
    except Exception:  # a kept environment is still kept when it cannot be described
        return {}


def changed_nodes(transition: Transition) -> list[str]:
    """Nodes a transition started, recreated or scaled: the ones to wait for."""
    return [c.name for c in transition.changes if c.action in (Action.START, Action.RECREATE, Action.SCALE)]


# the backend class for a name (``auto`` included): ``backends.registry.resolve``
resolve_backend = resolve


def make_options(
    run_id: str | None = None,
    *,
    ready_timeout: float = 120.0,
    local_command: Sequence[str] | None = None,
    worker: str = "",
    extra: Mapping[str, str] | None = None,
) -> BackendOptions:
    """BackendOptions with a fresh run id and its run directory."""
    rid = run_id or new_run_id()
    return BackendOptions(
        run_id=rid,
        workdir=run_directory(rid),
        ready_timeout=ready_timeout,
        worker=worker,
        local_command=tuple(local_command) if local_command else None,
        extra=dict(extra or {}),
    )
