"""The pytest side of shared environments (``bannou_share = session``) and ``--bannou-reuse``.

``SharingPlugin`` (registered as ``bannou-sharing``): the xdist controller picks the shared run
id and hands it to the workers, the first worker that needs an environment deploys it under a
file lock and the others attach, and the controller removes what is left at session end (see
``pytest_bannou.environment.sharing`` for the files and the attached backend). ``ReusePlugin``
(``bannou-reuse``) attaches to environments an earlier run kept.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..backends.attached import AttachedBackend
from ..backends.base import BackendOptions
from ..environment.environment import Environment
from ..environment.kept import changed_since_kept, recorded_options
from ..environment.manager import EnvironmentManager, resolve_backend
from ..environment.runs import (
    make_options,
    new_run_id,
    read_run_info,
    run_directory,
    run_project,
    runs_root,
)
from ..environment.sharing import (
    LOCK_GRACE,
    describe,
    ensure_shared_dir,
    read_json,
    shared_dir,
    slug,
    write_json,
)
from ..environment.sweep import write_owner
from ..errors import BannouError, DeployError
from ..topology.model import Topology

if TYPE_CHECKING:  # filelock is imported where a lock is taken: see _lock()
    from filelock import FileLock

RUN_ID_KEY = "bannou_shared_run_id"
WORKERS_KEY = "bannou_workers"


def require_filelock() -> None:
    """Shared mode takes file locks: without ``filelock`` (the ``xdist`` extra) it is a usage
    error naming the extra, before anything is deployed. Found, not imported (see ``_lock``)."""
    if importlib.util.find_spec("filelock") is None:
        raise pytest.UsageError(
            "--bannou-share=session needs filelock, which is not installed; "
            "install the xdist extra: pip install 'pytest-bannou[xdist]'"
        )


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
        if self.is_controller or self.run_id:
            require_filelock()
        if self.is_controller:
            self.run_id = new_run_id()
            write_owner(self.run_id)
        elif self.run_id:
            session.attachers.append(self.attach)

    # --- controller -----------------------------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if self.enabled and self.run_id:
            node.workerinput[RUN_ID_KEY] = self.run_id
            node.workerinput[WORKERS_KEY] = len(getattr(self.config.option, "tx", None) or ())

    @pytest.hookimpl(trylast=True)
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

    @pytest.hookimpl
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
        directory = ensure_shared_dir(self.run_id)
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
        options = self._options(name)
        manager = self.session.manager_of(key).sibling(options)  # no atexit/signal teardown:
        options.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)  # the controller removes it
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
        env = manager.attach(AttachedBackend(options, data), key, topology)
        self.session.manager.say(
            f"attached to shared environment {key} (deployed by {data.get('owner')})", False
        )
        self.session.manager.say("ok", True)
        return env

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
    """``--bannou-reuse``: attach to an environment an earlier run of this project (its pytest
    rootdir) kept (``--bannou-keep``) when its preset hash still matches and it was not changed
    since; one of a changed preset, or changed in place, is removed and the preset deployed
    again. Another project's kept runs are neither reused nor removed. Registered as
    ``bannou-reuse``; reused environments stay kept."""

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

        wanted = registry.canonical(self.session.settings.backend)
        root = runs_root()
        found = []
        for d in sorted(root.glob("bannou-*")) if root.is_dir() else []:
            info = read_run_info(d)
            if not info or not info.get("kept") or info.get("environment") != key:
                continue
            if wanted != "auto" and info.get("backend") != wanted:
                continue
            if run_project(info) != Path(self.config.rootpath):
                continue  # another project's (or another user's tmp project's): not ours to reuse or remove
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
            # what the run was deployed with (a kubeconfig, a context ...) wins: it is where the
            # run is, and where _remove must look for it
            extra = {**self.session.settings.backend_options, **recorded_options(info)}
            options = BackendOptions(run_id=run_id, workdir=run_directory(run_id), extra=extra)
            backend = AttachedBackend(options, data)
            alive = bool(data.get("replicas")) and all(s.state == "running" for s in backend.status())
            changed = changed_since_kept(run_directory(run_id))
            same_preset = info.get("preset_hash") == topology.preset_hash
            if same_preset and info.get("attach") and alive and not changed:
                manager = EnvironmentManager(str(info.get("backend")), options)
                env = manager.attach(backend, key, topology)
                self.envs[key] = env
                self._note(
                    f"reusing kept environment {key} (run id {run_id}, preset hash {topology.preset_hash})"
                )
                return env
            if not same_preset:
                old_hash = info.get("preset_hash")
                reason = f"preset hash {old_hash} != {topology.preset_hash} (the preset changed)"
            elif changed:
                reason = f"it was changed after it was kept ({changed}), so it is not the preset's"
            else:
                reason = "it is no longer running"
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
        self.session.manager.say(text, False)
        self.session.manager.say("", True)

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for key, env in self.envs.items():
            terminalreporter.write_line(
                f"bannou: reused environment {key} is still running (run id {env.run_id}); "
                f"remove it with: bannou-env clean --run-id {env.run_id} --backend {env.backend}"
            )
