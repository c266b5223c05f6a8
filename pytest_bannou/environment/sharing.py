"""Shared mode (``bannou_share = session``): one environment per preset serves every xdist worker.

The controller picks one *shared run id* and hands it to the workers. The first worker that
needs environment ``key`` deploys it under a file lock (``<run dir>/shared/<key>.lock``) and
writes what the others need to reach it (endpoints, replica ids, log files) to
``<run dir>/shared/<key>.json``; the next workers take the lock, find the file and attach.
Every attached worker is listed as a user (the reference count). At its session end a worker
detaches; when the count reaches zero after every worker has finished, the worker that deployed
the environment tears it down. Whatever is left — a worker crashed, the run was interrupted —
the controller removes at session end through the backend's ``clean(shared run id)``. The
controller also writes ``owner.pid`` into the run directory, so a concurrent session's stale
sweep never mistakes a shared environment whose deploying worker died for a dead session's.

Attached workers use the environment read-only: URLs, endpoints, status and (local backend)
logs work; ``restart``/``scale`` raise ``DeployError`` (they would change it under the other
workers' feet — such tests belong in ``bannou_share = none`` runs).

No pytest import at module level; ``SharingPlugin`` is registered by the pytest glue.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from .._support.files import atomic_write
from ..backends.attached import AttachedBackend
from ..backends.base import Backend, BackendOptions
from ..errors import BannouError, DeployError
from ..topology.model import Topology
from .manager import (
    Environment,
    EnvironmentManager,
    make_options,
    new_run_id,
    resolve_backend,
    run_directory,
)
from .sweep import write_owner

if TYPE_CHECKING:  # filelock is imported where a lock is taken: see _lock()
    from filelock import FileLock

hookimpl = pluggy.HookimplMarker("pytest")
RUN_ID_KEY = "bannou_shared_run_id"
WORKERS_KEY = "bannou_workers"
LOCK_GRACE = 60.0  # seconds beyond the ready timeout a worker waits for another one's deploy


def shared_dir(run_id: str) -> Path:
    return run_directory(run_id) / "shared"


def slug(key: str) -> str:
    """A file-name-safe, unique name for an environment key (``a[env:X=1]`` -> ``a-env-x-1-3f2a``)."""
    base = re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")[:40] or "env"
    return f"{base}-{hashlib.sha256(key.encode()).hexdigest()[:6]}"


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write(path, json.dumps(dict(data), indent=1, sort_keys=True))


def describe(backend: Backend, env: Environment) -> dict[str, Any]:
    """What an attaching worker needs: endpoints per node/replica/port, replica ids, log files."""
    endpoints: dict[str, list[dict[str, list[Any]]]] = {}
    http_ports: dict[str, int | None] = {}
    for node in env.topology.nodes:
        http_ports[node.name] = node.http_port
        per_replica = []
        for i in range(node.replicas):
            ports = {}
            for port in node.ports:
                with contextlib.suppress(BannouError, KeyError):
                    ep = backend.endpoint(node.name, port, i)
                    ports[str(port)] = [ep.host, ep.port]
            per_replica.append(ports)
        endpoints[node.name] = per_replica
    replicas = [
        {"node": s.node, "replica": s.replica, "state": s.state, "id": s.id} for s in backend.status()
    ]
    attach = {"logs": {}, **backend.attach_info()}  # log files, whether replica ids are PIDs
    return {"endpoints": endpoints, "http_ports": http_ports, "replicas": replicas, **attach}


class SharingPlugin:
    """Shared environments across xdist workers (registered as ``bannou-sharing``)."""

    def __init__(self, config: Any, session: Any) -> None:
        self.config = config
        self.session = session
        self.enabled = session.settings.share == "session"
        workerinput = getattr(config, "workerinput", None)
        self.worker: str = workerinput.get("workerid", "") if workerinput else ""
        self.run_id: str | None = workerinput.get(RUN_ID_KEY) if workerinput else None
        self.workers = int(workerinput.get(WORKERS_KEY, 0) or 0) if workerinput else 0
        self.is_controller = (
            workerinput is None
            and getattr(config.option, "dist", "no") != "no"
            and bool(getattr(config.option, "tx", None))
        )
        self.envs: dict[str, Environment] = {}
        self.owned: dict[str, EnvironmentManager] = {}
        self.torn_down: list[str] = []
        if not self.enabled:
            return
        if self.is_controller:
            self.run_id = new_run_id()
            write_owner(self.run_id)
        elif self.run_id:
            session.attachers.append(self.attach)

    # --- controller -----------------------------------------------------------------------
    @hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if self.enabled and self.run_id:
            node.workerinput[RUN_ID_KEY] = self.run_id
            node.workerinput[WORKERS_KEY] = len(getattr(self.config.option, "tx", None) or ())

    @hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: Any) -> None:
        if not self.enabled or not self.run_id:
            return
        if self.is_controller:
            self.torn_down = self.teardown_all()
        else:
            self.detach_all()

    def teardown_all(self) -> list[str]:
        """Controller, session end: remove every shared environment still standing."""
        assert self.run_id is not None
        directory = shared_dir(self.run_id)
        removed: list[str] = []
        backends = {
            str(d.get("backend"))
            for p in directory.glob("*.json")
            if (d := read_json(p)) and d.get("backend")
        }
        for name in sorted(backends):
            cls = resolve_backend(name)
            options = BackendOptions(run_id=self.run_id, workdir=run_directory(self.run_id))
            removed += [f"{name}: {line}" for line in cls.clean(self.run_id, options)]
        for p in directory.glob("*.json"):
            data = read_json(p) or {}
            if data.get("state") == "ready":
                data["state"] = "removed"
                write_json(p, data)
        with contextlib.suppress(OSError):
            (run_directory(self.run_id) / "owner.pid").unlink()
        if not any(d.get("error") for p in directory.glob("*.json") if (d := read_json(p))):
            import shutil

            shutil.rmtree(run_directory(self.run_id), ignore_errors=True)
        return removed

    @hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_controller and self.enabled and self.torn_down:
            terminalreporter.write_line(
                f"bannou: shared environments of run {self.run_id} removed by the controller: "
                f"{len(self.torn_down)} resources"
            )

    # --- workers --------------------------------------------------------------------------
    def _lock(self, name: str) -> FileLock:
        # imported here, not at module level: only shared mode takes locks, and importing
        # filelock keeps every module graph alive through the interpreter's first garbage
        # collection at exit, which doubles that collection's cost (bench/README.md "scheduling")
        from filelock import FileLock

        assert self.run_id is not None
        directory = shared_dir(self.run_id)
        directory.mkdir(parents=True, exist_ok=True)
        return FileLock(
            str(directory / f"{name}.lock"), timeout=self.session.settings.ready_timeout + LOCK_GRACE
        )

    def attach(self, key: str, topology: Topology) -> Environment:
        """The shared environment ``key``: deployed by this worker if it is the first, else attached."""
        env = self.envs.get(key)
        if env is not None:
            return env
        assert self.run_id is not None
        from filelock import Timeout

        name = slug(key)
        path = shared_dir(self.run_id) / f"{name}.json"
        try:
            with self._lock(name):
                data = read_json(path)
                if data is not None and data.get("error"):
                    raise DeployError(str(data["error"]))
                if data is not None and data.get("state") == "ready":
                    env = self._attached(key, topology, data)
                else:
                    env = self._deploy(key, name, topology, path)
                    data = read_json(path) or {}
                data["users"] = sorted({*data.get("users", []), self.worker})
                write_json(path, data)
        except Timeout:
            raise DeployError(
                f"shared environment {key!r}: another worker held {path.with_suffix('.lock')} longer "
                "than the ready timeout; raise --bannou-ready-timeout or check that worker's output"
            ) from None
        self.envs[key] = env
        return env

    def _options(self, name: str) -> BackendOptions:
        assert self.run_id is not None
        options = make_options(
            self.run_id,
            ready_timeout=self.session.settings.ready_timeout,
            local_command=self.session.settings.local_command,
            worker=f"s-{name[-6:]}",
            extra=self.session.settings.backend_options,
        )
        options.workdir = shared_dir(self.run_id) / name
        return options

    def _deploy(self, key: str, name: str, topology: Topology, path: Path) -> Environment:
        own = self.session.manager
        options = self._options(name)
        manager = EnvironmentManager(
            own.backend_request,
            options,
            progress=own._progress,
            on_ready=own._on_ready,
            before_teardown=own._before_teardown,
            configure_backend=own._configure_backend,
        )
        manager.backend = resolve_backend(own.backend_request)(options)  # no atexit/signal teardown:
        options.workdir.mkdir(parents=True, exist_ok=True)  # the controller owns its removal
        base = {"key": key, "preset": topology.preset, "preset_hash": topology.preset_hash}
        base |= {"backend": manager.backend.name, "owner": self.worker, "owner_pid": os.getpid()}
        write_json(path, {**base, "state": "deploying"})
        try:
            env = manager.activate(key, topology)
        except BannouError as exc:
            write_json(path, {**base, "state": "failed", "error": exc.message})
            raise
        except BaseException:
            write_json(path, {**base, "state": "failed"})
            raise
        write_json(path, {**base, "state": "ready", **describe(manager.backend, env)})
        rec, mine = manager.records[key], self.session.manager.record(key, topology.preset)
        mine.backend = rec.backend
        mine.activations += rec.activations
        mine.deploy_time, mine.ready_time = rec.deploy_time, rec.ready_time
        self.owned[key] = manager
        return env

    def _attached(self, key: str, topology: Topology, data: Mapping[str, Any]) -> Environment:
        options = self._options(slug(key))
        manager = EnvironmentManager(str(data.get("backend", "local")), options)
        manager.backend = AttachedBackend(options, data)
        manager.current = Environment(manager, key, topology)
        self.session._progress(
            f"attached to shared environment {key} (deployed by {data.get('owner')})", False
        )
        self.session._progress("ok", True)
        return manager.current

    def detach_all(self) -> None:
        """Worker, session end: leave every shared environment; the deployer of one whose last
        user has left, once every worker finished, tears it down."""
        from filelock import Timeout

        assert self.run_id is not None
        finished = self._finish_count()
        for key in list(self.envs):
            name = slug(key)
            path = shared_dir(self.run_id) / f"{name}.json"
            with contextlib.suppress(Timeout), self._lock(name):
                data = read_json(path) or {}
                users = [u for u in data.get("users", []) if u != self.worker]
                data["users"] = users
                manager = self.owned.get(key)
                last = not users and self.workers and finished >= self.workers
                if manager is not None and last and data.get("state") == "ready":
                    manager.teardown()
                    data["state"] = "removed"
                write_json(path, data)

    def _finish_count(self) -> int:
        """Record this worker as finished; return how many workers have finished."""
        assert self.run_id is not None
        from filelock import Timeout

        path = shared_dir(self.run_id) / "finished.json"
        with contextlib.suppress(Timeout), self._lock("finished"):
            done = set((read_json(path) or {}).get("workers", [])) | {self.worker}
            write_json(path, {"workers": sorted(done), "updated": time.time()})
            return len(done)
        return 0


# --- --bannou-reuse --------------------------------------------------------------------------
class ReusePlugin:
    """``--bannou-reuse``: attach to an environment an earlier run kept (``--bannou-keep``) when
    its preset hash still matches; a kept environment of a changed preset is removed and the
    preset deployed again. Registered as ``bannou-reuse``; reused environments stay kept."""

    def __init__(self, config: Any, session: Any) -> None:
        self.config = config
        self.session = session
        self.envs: dict[str, Environment] = {}
        self.notes: list[str] = []
        shared_worker = session.settings.share == "session" and hasattr(config, "workerinput")
        if session.settings.reuse and not shared_worker:
            session.attachers.insert(0, self.attach)

    def _candidates(self, key: str) -> list[dict[str, Any]]:
        from ..backends import registry
        from .manager import read_run_info, runs_root

        wanted = registry.canonical(self.session.settings.backend)
        root = runs_root()
        found = []
        for d in sorted(root.glob("bannou-*")) if root.is_dir() else []:
            info = read_run_info(d)
            if not info or not info.get("kept") or info.get("environment") != key:
                continue
            if wanted != "auto" and info.get("backend") != wanted:
                continue
            found.append(info)
        return sorted(found, key=lambda i: -float(i.get("updated") or 0))

    def attach(self, key: str, topology: Topology) -> Environment | None:
        env = self.envs.get(key)
        if env is not None:
            return env
        for info in self._candidates(key):
            run_id = str(info["run_id"])
            data = {**(info.get("attach") or {}), "key": key, "backend": info.get("backend")}
            data["why"] = f"was kept by run {run_id} and is reused (--bannou-reuse): it cannot be changed"
            options = BackendOptions(run_id=run_id, workdir=run_directory(run_id))
            backend = AttachedBackend(options, data)
            alive = bool(data.get("replicas")) and all(s.state == "running" for s in backend.status())
            if info.get("preset_hash") == topology.preset_hash and info.get("attach") and alive:
                manager = EnvironmentManager(str(info.get("backend")), options)
                manager.backend = backend
                manager.current = env = Environment(manager, key, topology)
                self.envs[key] = env
                self._note(
                    f"reusing kept environment {key} (run id {run_id}, preset hash {topology.preset_hash})"
                )
                return env
            reason = (
                f"preset hash {info.get('preset_hash')} != {topology.preset_hash} (the preset changed)"
                if info.get("preset_hash") != topology.preset_hash
                else "it is no longer running"
            )
            self._note(f"kept environment {key} (run id {run_id}) not reused: {reason}; removing it")
            self._remove(str(info.get("backend")), options)
        return None

    def _remove(self, backend: str, options: BackendOptions) -> None:
        import shutil

        try:
            for line in resolve_backend(backend).clean(options.run_id, options):
                self._note(f"  removed {line}")
        except BannouError as exc:
            self._note(f"  could not remove it: {exc.message}")
        shutil.rmtree(options.workdir, ignore_errors=True)

    def _note(self, text: str) -> None:
        self.notes.append(text)
        self.session._progress(text, False)
        self.session._progress("", True)

    @hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for key, env in self.envs.items():
            terminalreporter.write_line(
                f"bannou: reused environment {key} is still running (run id {env.run_id}); "
                f"remove it with: bannou-env clean --run-id {env.run_id} --backend {env.backend}"
            )
