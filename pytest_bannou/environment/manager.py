"""The lifecycle of a session's environments: deploy, wait ready, transition, live changes,
teardown, signals.

``EnvironmentManager`` owns the session's one backend instance and the environment currently
deployed on it. ``activate(key, topology)`` makes that environment current: the first one is
deployed, the next ones are reached by applying the topology diff (or by teardown + deploy with
``transition="full"``). A failed activation tears down what was started and is remembered per
key, so the remaining tests of that environment fail at once with the same message while the
other environments still run. Activating the current environment again (the next test) first
``restore``s it if a test changed it: back to the topology it was activated with, by the same
incremental transition. Live changes (``update``/``rollback``) go through the manager too:
it owns each environment's configuration ``History``. Teardown runs at session end, on SIGTERM
(turned into ``KeyboardInterrupt`` so the caller's normal interrupt path runs) and, as a last
resort, at exit.

No pytest import: the plugin and ``bannou-env deploy`` both drive this module.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._support.masking import without_secrets
from ..backends.base import Backend, BackendOptions
from ..backends.registry import resolve
from ..errors import BannouError, DeployError
from ..messaging.session import EnvMessaging
from ..topology.diff import Action, Transition, diff
from ..topology.model import Topology
from .environment import Environment
from .faults import ActiveFaults, FaultEvent, inject, undo_all
from .live import History, TopologyChange, announce, as_change, change_topology, save_history
from .record import EnvRecord
from .runs import RUN_INFO, current_directory, ensure_run_directory, write_run_info
from .sharing import describe
from .signals import SignalGuard

Progress = Callable[[str, bool], None]  # (text, done): done False starts a line, True ends it
"""Progress callback: ``("deploying x on local: 3 nodes", False)`` then ``("ready in 1.4 s", True)``."""


class EnvironmentManager(SignalGuard):
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
        on_failed: Callable[[Environment, str, float], None] | None = None,
        project: str | os.PathLike[str] | None = None,
    ) -> None:
        self.backend_request = backend
        # the project the run belongs to (pytest's rootdir; default the working directory), so
        # ``bannou-env clean``/``status`` in a checkout tell its runs from other checkouts'
        self.project = os.fspath(project) if project else current_directory()
        self.options = options
        self.transition_mode = transition
        self._progress = progress
        self._on_ready = on_ready
        self._before_teardown = before_teardown
        self._configure_backend = configure_backend
        self._on_failed = on_failed  # (environment, error, seconds until it failed): the report
        if messaging is None:  # broker/heartbeats/mapping events, active for presets with rabbitmq
            messaging = EnvMessaging(workdir=options.workdir)
        self.messaging = messaging
        self.backend: Backend | None = None
        self._backend_error: BannouError | None = None
        self.current: Environment | None = None
        self.records: dict[str, EnvRecord] = {}
        self.failures: dict[str, BannouError] = {}
        self._restart_base: int | None = None  # backend restarts when the current env became ready
        # the current environment's topology as activated (its preset): what ``restore`` returns to
        self._activated: Topology | None = None
        self._activated_at: float | None = None  # when (configuration version 1's time)
        self._unsure = False  # a change failed and so did its undo: the environment's state is unknown
        self.faults = ActiveFaults()  # faults a test made on the current environment, undone before the next
        # reentrant: the interrupt path (KeyboardInterrupt from a signal, then teardown) may run
        # while the interrupted code of this same thread still holds it
        self._lock = threading.RLock()
        self._histories: weakref.WeakKeyDictionary[Environment, History] = weakref.WeakKeyDictionary()
        self._old_handlers: dict[int, Any] = {}
        self._interrupted: int | None = None  # the signal _on_signal turned into KeyboardInterrupt
        self._tearing_down = False
        self._wrote_info = False  # the run info is this manager's to remove (several share a run)
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

    def sibling(self, options: BackendOptions) -> EnvironmentManager:
        """A manager for another run directory with this one's backend request and callbacks
        (a shared environment deployed by one xdist worker). Its backend is created at once and
        it installs no signal handlers or exit hook: whoever owns that run removes it."""
        other = EnvironmentManager(
            self.backend_request,
            options,
            transition=self.transition_mode,
            progress=self._progress,
            on_ready=self._on_ready,
            before_teardown=self._before_teardown,
            configure_backend=self._configure_backend,
            on_failed=self._on_failed,
            project=self.project,
        )
        other.backend = resolve_backend(self.backend_request)(options)
        return other

    def attach(self, backend: Backend, key: str, topology: Topology) -> Environment:
        """Make ``topology``, already running on ``backend`` (deployed by someone else), this
        manager's current environment without deploying anything."""
        with self._lock:
            self.backend = backend
            self.current = Environment(self, key, topology)
            self._activated = None  # someone else's environment: not restored from here
            return self.current

    # --- activation -------------------------------------------------------------------------
    def record(self, key: str, preset: str) -> EnvRecord:
        rec = self.records.get(key)
        if rec is None:
            rec = self.records[key] = EnvRecord(key, preset, self.backend_name)
        return rec

    def activate(self, key: str, topology: Topology, ready_timeout: float | None = None) -> Environment:
        """Make ``key`` the deployed environment and return it once every node is ready.

        Already current: returned as it is, or first brought back to its preset if a test
        changed it (``restore``); if that fails it is deployed again, as the same object.
        Raises the remembered ``BannouError`` at once if this key failed before.
        """
        with self._lock:
            if key in self.failures:
                raise self.failures[key]
            self._undo_faults()  # before a restore or a transition: every test starts without faults
            again = self.current if self.current is not None and self.current.key == key else None
            if again is not None and self.restore(again):
                return again
            backend = self._ensure_backend()
            rec = self.record(key, topology.preset)
            rec.backend = backend.name
            timeout = ready_timeout if ready_timeout is not None else self.options.ready_timeout
            start = time.monotonic()
            deadline = start + timeout
            env = again if again is not None else Environment(self, key, topology)
            env.topology = topology
            try:
                self._switch(backend, env, rec, deadline, start)
            except BaseException as exc:
                self._fail(env, rec, exc, start)
                raise
            rec.activations += 1
            self._activated, self._unsure = env.topology, False
            self._activated_at = time.time()
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

    # --- restore: every test starts from its environment as the preset defines it -------------
    def changed(self, env: Environment) -> bool:
        """Whether ``env`` (the current environment) differs from the topology it was activated
        with: a test called ``update``, ``scale``, ``restart(node, environment=...)``..."""
        preset = self._activated
        if env is not self.current or preset is None:
            return False
        return self._unsure or not (env.topology is preset or env.topology == preset)

    def restore(self, env: Environment) -> bool:
        """Bring the current environment back to the topology it was activated with if a test
        changed it, by the transition used between presets (only changed nodes restart; a
        mapping event when messaging is on); its configuration history starts again at
        version 1. Unchanged, nothing happens (no transition, no probe). False when it could
        not be brought back: it was torn down (``activate`` then deploys it again)."""
        with self._lock:
            if not self.changed(env):
                self._restart_history(env)  # a test that rolled back all it changed left versions
                return True
            rec = self.record(env.key, env.preset)
            preset = self._activated
            assert preset is not None
            start = time.monotonic()
            transition = diff(env.topology, preset)
            self._collect_restarts(env)
            try:
                if self._unsure:
                    self._say(f"restoring {env.key} (a change failed and so did its undo)", False)
                    raise DeployError("its state is unknown")
                self._say(f"restoring {env.key} (a test changed it): {transition.summary()}", False)
                self._move(env, self._ensure_backend(), env.topology, preset)
                self.messaging.ready(env, "topology-changed", [f"restore {env.key}: {transition.summary()}"])
            except Exception as exc:
                self.messaging.failed(env, exc)
                self._say(f"FAILED ({_message(exc)}); deploying it again", True)
                self._teardown_current(quiet=True)
                return False
            elapsed = time.monotonic() - start
            rec.restores += 1
            rec.restore_time += elapsed
            self._restart_base = self._restarts_now()
            self._restart_history(env)
            self._write_info()
            self._say(f"ready in {elapsed:.1f} s", True)
            return True

    def fault(self, env: Environment, action: str, node: str, replica: int | None = None) -> None:
        """Make or end a fault on ``node`` of ``env`` (``environment.faults``)."""
        backend, log = env.engine(), self.record(env.key, env.preset).faults
        with self._lock:
            inject(self.faults, backend, FaultEvent(action, node, replica), log, self._say, env.key)
            if action in ("resume", "reconnect"):  # the test continues with the node answering
                self.wait_ready(env, [node])

    def _undo_faults(self) -> None:
        """End the faults made on the current environment; if that fails, it is torn down."""
        env, backend = self.current, self.backend
        if env is not None and backend is not None and self.faults:
            log = self.record(env.key, env.preset).faults
            if not undo_all(self.faults, backend, log, lambda n: self.wait_ready(env, n), self._say, env.key):
                self._teardown_current(quiet=True)

    def _restart_history(self, env: Environment) -> None:
        """After a restore, configuration version 1 again (the preset): what the next test
        sees as ``config_version``, and where ``bannou-env update`` continues from."""
        if len(self._histories.get(env, History()).versions) < 2:  # no change recorded: nothing to do
            return
        history = self._histories[env] = History.start(env.topology)
        with contextlib.suppress(OSError):
            save_history(self.options.workdir, history)

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

    # --- live changes (TopologyChange; pure part in pytest_bannou.environment.live) ----------
    def history(self, env: Environment) -> History:
        """The configuration versions of ``env``; version 1 is the topology as deployed."""
        history = self._histories.get(env)
        if history is None:
            history = self._histories[env] = History.start(env.topology, self._activated_at)
        return history

    def adopt_history(self, env: Environment, history: History) -> None:
        """Continue ``history`` on ``env`` (``bannou-env update`` redeploys a kept environment):
        its last version becomes what ``env`` runs now."""
        history.versions[-1] = (history.current, env.topology)
        self._histories[env] = history

    def config_version(self, env: Environment) -> int:
        return self.history(env).current

    def update(self, env: Environment, changes: Iterable[TopologyChange | Mapping[str, Any]]) -> int:
        """Apply ``changes`` to the running ``env`` (all or nothing); returns the new version."""
        items = [as_change(c) for c in changes]
        new = change_topology(env.topology, items)
        return self._change(env, new, [c.describe() for c in items])

    def rollback(self, env: Environment, version: int | None = None) -> int:
        """Return ``env`` to configuration ``version`` (default: the one before the current),
        recorded as a new version (bannou's rollback keeps the audit trail); returns that one."""
        history = self.history(env)
        target = history.rollback_target(version, f"environment {env.key!r}")
        return self._change(env, history.topology(target), [f"rollback to configuration version {target}"])

    def _change(self, env: Environment, new: Topology, changes: list[str]) -> int:
        history = self.history(env)
        old = env.topology
        self._go(env, new, changes, history)
        return self.record_change(env, old, changes, restarts=True)

    def record_change(
        self, env: Environment, old: Topology, changes: list[str], restarts: bool = False
    ) -> int:
        """Record ``env``'s topology as a new configuration version (``scale`` and the changes
        above) and announce it (``live.announce``; with ``restarts``, the nodes it recreated)."""
        history = self.history(env)
        entry = history.record(env.topology, changes)
        save_history(self.options.workdir, history)
        announce(self.messaging, entry, old if restarts else None, env.topology)
        return entry.version

    def _go(self, env: Environment, new: Topology, changes: list[str], history: History) -> None:
        """Take ``env`` to ``new``; if the backend or readiness fails, back to where it was."""
        backend = env.engine()
        old = env.topology
        with self._lock:
            try:
                self._move(env, backend, old, new)
            except Exception as exc:  # any failure, not only ours: the environment goes back
                error = exc if isinstance(exc, BannouError) else DeployError(f"{type(exc).__name__}: {exc}")
                self.messaging.failed(env, error)
                try:
                    self._move(env, backend, new, old)
                    self.messaging.ready(env, "topology-changed", [f"undo {'; '.join(changes)}"])
                except Exception as again:
                    env.topology = old  # the configuration it is meant to be at; the error says it is not
                    self._unsure = True  # so the next test gets it deployed again
                    raise DeployError(
                        f"environment {env.key!r}: change ({'; '.join(changes)}) failed: {error.message};"
                        f" going back to the previous configuration failed too: {_message(again)}"
                    ) from None
                raise DeployError(
                    f"environment {env.key!r}: change ({'; '.join(changes)}) failed and was undone"
                    f" (configuration version {history.current} again): {error.message}"
                ) from None
            finally:
                self._write_info()
            self.messaging.ready(env, "topology-changed", changes)

    def _move(self, env: Environment, backend: Backend, old: Topology, new: Topology) -> None:
        transition = diff(old, new)
        deadline = time.monotonic() + self.options.ready_timeout
        recreated = [c.old.app_id for c in transition.changes if c.action is Action.RECREATE and c.old]
        self.messaging.forget(recreated)
        if not transition.is_noop:
            backend.apply(transition, deadline)
        env.topology = new
        changed = changed_nodes(transition)
        if changed:
            self.wait_ready(env, nodes=changed)

    def _fail(self, env: Environment, rec: EnvRecord, exc: BaseException, start: float) -> None:
        """Tear down after a failed activation; remember a user-facing failure for the key and
        report it (``on_failed``: a failed deploy is an environment of the report too)."""
        if isinstance(exc, BannouError):
            rec.error = exc.message
            self.failures[env.key] = exc
        elif not isinstance(exc, KeyboardInterrupt | SystemExit):
            err = DeployError(f"environment {env.key!r} on {self.backend_name}: {type(exc).__name__}: {exc}")
            rec.error = err.message
            self.failures[env.key] = err
        self.messaging.failed(env, exc)
        if self._on_failed is not None and rec.error is not None:
            with contextlib.suppress(Exception):
                self._on_failed(env, rec.error, time.monotonic() - start)
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
        quiet = quiet or env is None  # nothing deployed here (e.g. --bannou-reuse attached): no line
        if env is not None:
            self._collect_restarts(env)
            if self._before_teardown is not None:
                with contextlib.suppress(Exception):
                    self._before_teardown(env)
        if not quiet:
            self._say(f"teardown {label}", False)
        self.messaging.stop()  # before the broker it talks to goes away
        self.faults.resume_paused(backend)  # a frozen process never blocks teardown
        try:
            backend.teardown()
        finally:
            self.current = None
            self._activated, self._unsure = None, False
            if not quiet:
                self._say(f"{time.monotonic() - start:.1f} s", True)

    def release(self) -> None:
        """Tear the current environment down, stay usable: the next one runs on another backend."""
        with self._lock:
            if self.current is None or self._closed:
                return
            try:
                self._teardown_current()
            finally:
                self._remove_info()

    def teardown(self, keep: bool = False, remove_workdir: bool = False) -> Environment | None:
        """End of session: tear the current environment down (or, with ``keep``, leave it running
        and return it). ``remove_workdir`` also deletes the run directory (node logs) once
        everything is down. Idempotent.

        A signal that arrives once teardown has begun is ignored (``_on_signal``), and the
        teardown only counts as done once it is shielded from signals: one that interrupts its
        start (SIGINT, before the shield) leaves it to the next call on the interrupt path."""
        self._tearing_down = True  # a plain assignment, before the lock: read by _on_signal
        try:
            with self._lock:
                if self._closed:
                    self.restore_signals()
                    return None
                self.shield_signals()  # a SIGTERM/SIGINT now must not cut the teardown short
                self._closed = True
                try:
                    return self._teardown(keep, remove_workdir)
                finally:
                    self.restore_signals()
        finally:
            self._tearing_down = False

    def _teardown(self, keep: bool, remove_workdir: bool) -> Environment | None:
        if keep and self.current is not None:
            self._undo_faults()  # kept as its preset defines it
            with contextlib.suppress(OSError):  # ``bannou-env update``/``rollback`` continue from it
                save_history(self.options.workdir, self.history(self.current))
            self.messaging.keep(self.current)
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
                    "routing": env.topology.routing(),  # ``bannou-env logs RUN SERVICE``
                    "urls": env.urls(),
                    "no_http": [n.name for n in env.topology.infrastructure if not n.http_health],
                    "owner_pid": os.getpid(),
                    "project": self.project,
                    "kept": kept,
                    "updated": time.time(),
                    "preset_hash": env.topology.preset_hash,
                    # update/status/logs use them again; a password or API key is not written
                    "backend_options": without_secrets(self.options.extra),
                    **({"attach": _attach_info(self.backend, env)} if kept and self.backend else {}),
                },
            )
            self._wrote_info = True

    def _remove_info(self) -> None:
        if not self._wrote_info:  # another manager of the run wrote it (or nobody did)
            return
        self._wrote_info = False
        with contextlib.suppress(OSError):
            (self.options.workdir / RUN_INFO).unlink()

    # --- progress ---------------------------------------------------------------------------
    def say(self, text: str, done: bool) -> None:
        """Report progress through the session's callback (``done`` ends the line)."""
        self._say(text, done)

    def _say(self, text: str, done: bool) -> None:
        if self._progress is not None:
            with contextlib.suppress(Exception):
                self._progress(text, done)


def _attach_info(backend: Backend, env: Environment) -> dict[str, Any]:
    """Endpoints, replica ids and log files of a kept environment (``--bannou-reuse``)."""
    try:
        return describe(backend, env)
    except Exception:  # a kept environment is still kept when it cannot be described
        return {}


def changed_nodes(transition: Transition) -> list[str]:
    """Nodes a transition started, recreated or scaled: the ones to wait for."""
    return [c.name for c in transition.changes if c.action in (Action.START, Action.RECREATE, Action.SCALE)]


def _message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, BannouError) else f"{type(exc).__name__}: {exc}"


# the backend class for a name (``auto`` included): ``backends.registry.resolve``
resolve_backend = resolve
