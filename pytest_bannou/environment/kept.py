"""Changes to a kept environment from another process (``bannou-env update``/``rollback``), in
place: the backend takes the run over (``Backend.reattach``), the manager applies the change as
inside a session (only what differs: the other nodes keep their processes or containers and
ports; a failure half-way goes back to the previous configuration), and the run's record
(``environment.json``, the backend's state, ``live.json``) is written again for ``status``,
``logs``, ``clean`` and the next change.

A backend that cannot take a run over (a third-party one without ``reattach``) is not changed
here: ``in_place_supported`` says so, and the CLI redeploys the run instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from ..backends import registry
from ..backends.base import Backend, BackendOptions
from ..messaging.contract import DEFAULT_TTL
from ..messaging.restart_policy import DEFAULT_DEGRADED_THRESHOLD
from ..messaging.session import EnvMessaging, MessagingSettings, read_state
from ..topology.diff import Action, diff
from .environment import Environment
from .live import History, changed_keys, load_history
from .manager import EnvironmentManager, Progress
from .runs import make_options, run_directory, run_project

#: what to do with the taken-over environment: ``manager.update(env, ...)``, ``manager.rollback(env)``
Change = Callable[[EnvironmentManager, Environment], int]


def in_place_supported(info: Mapping[str, Any]) -> bool:
    """Whether the run's backend can take a kept run over (implements ``reattach``)."""
    cls = registry.load(_backend_name(info))
    return getattr(cls, "reattach", Backend.reattach) is not Backend.reattach


def change_kept_run(
    run_id: str,
    info: Mapping[str, Any],
    history: History,
    change: Change,
    timeout: float,
    progress: Progress | None = None,
) -> tuple[Environment, int]:
    """Take the kept run ``run_id`` over (at configuration ``history``'s last version), make
    ``change`` in place and leave the run kept, its record written again; returns the
    environment (its URLs are valid until this process ends on backends whose endpoints live in
    the process, kubernetes' port-forwards) and the configuration version ``change`` returned.
    A failed change raises the manager's error (undone, or saying that going back failed)."""
    workdir = run_directory(run_id)
    options = make_options(run_id, ready_timeout=timeout, extra=recorded_options(info))
    manager = EnvironmentManager(
        _backend_name(info),
        options,
        progress=progress,
        messaging=EnvMessaging(_settings(workdir), workdir),
        project=run_project(info),
    )
    topology = history.versions[-1][1]
    key = str(info.get("environment") or topology.preset)
    deadline = time.monotonic() + timeout
    # created directly, not through manager.prepare(): no exit hook or signal handler that
    # would tear the kept run down if this process is interrupted
    backend = registry.load(_backend_name(info))(options)
    backend.reattach(topology, deadline)
    env = manager.attach(backend, key, topology)
    try:
        manager.messaging.attach(backend, env, deadline, _last_version(workdir))
        manager.adopt_history(env, history)
        version = change(manager, env)
    finally:
        manager.teardown(keep=True)  # the record, the history and the messaging state again
    return env, version


def recorded_options(info: Mapping[str, Any], given: Mapping[str, str] | None = None) -> dict[str, str]:
    """The backend options a run was deployed with (its record's ``backend_options``: a
    kubeconfig, a NodePort Service ...), those ``given`` now winning: what a command that takes
    the run over (update, rollback, status, logs, clean) creates its backend with."""
    recorded = info.get("backend_options")
    out = {str(k): str(v) for k, v in recorded.items()} if isinstance(recorded, Mapping) else {}
    return {**out, **(given or {})}


@contextmanager
def taken_over(
    workdir: Path, info: Mapping[str, Any], given: Mapping[str, str] | None = None
) -> Iterator[Backend | None]:
    """The run's backend, created with its recorded options and taken over for reading
    (``bannou-env status``): its endpoints work inside the ``with`` (kubernetes opens
    port-forwards of this process) and are closed after (``Backend.detach``). None when it
    cannot be taken over; the caller then uses the run's record. ``workdir`` is the run's
    directory (named by its run id)."""
    try:
        backend = registry.load(_backend_name(info))(
            BackendOptions(run_id=workdir.name, workdir=workdir, extra=recorded_options(info, given))
        )
    except Exception:  # a backend no longer installed: the record is all there is
        yield None
        return
    if not take_over(backend, workdir):
        with suppress(Exception):  # what a half-done take-over opened (a port-forward)
            backend.detach()
        yield None
        return
    try:
        yield backend
    finally:
        with suppress(Exception):
            backend.detach()


def take_over(backend: Backend, workdir: Path) -> bool:
    """Let ``backend`` take over the run recorded in ``workdir`` (its last configuration
    version) for reading it (``bannou-env logs``); False when it cannot (no record, a backend
    without ``reattach``, the run is gone): the caller then uses what it has."""
    try:
        history = load_history(workdir)
        if history is None:
            return False
        backend.reattach(history.versions[-1][1], time.monotonic() + backend.options.ready_timeout)
    except Exception:  # reading must not fail on it: the backend's own message comes next
        return False
    return True


def changed_since_kept(workdir: Path) -> str:
    """How a kept run's current configuration differs from the one it was deployed with ("" when
    it does not): ``bannou-env update``/``rollback`` change a kept run in place, and a test must
    not be handed an environment that is not its preset's. Compared with version 1, not with the
    preset itself: version 1 also holds what the session added when it deployed (the broker URL,
    peers' addresses), and the caller checks the preset hash. Says the version and what changed;
    a record that cannot be read counts as changed."""
    try:
        history = load_history(workdir)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return f"its record of changes ({workdir.name}/live.json) cannot be read: {type(exc).__name__}"
    if history is None or len(history.versions) < 2:  # never changed: as deployed
        return ""
    deployed, current = history.versions[0][1], history.versions[-1][1]
    keys = changed_keys(deployed, current)
    nodes = [c.name for c in diff(deployed, current).changes if c.action is not Action.KEEP]
    if not keys and not nodes:
        return ""
    entry = history.details.get(history.current)
    what = "; ".join(entry.changes) if entry is not None and entry.changes else ", ".join(keys or nodes)
    return f"configuration version {history.current}: {what}"


def _backend_name(info: Mapping[str, Any]) -> str:
    name = info.get("backend")
    return name if isinstance(name, str) and name else "local"


def _settings(workdir: Path) -> MessagingSettings:
    state = read_state(workdir).get("messaging") or {}
    return MessagingSettings(
        amqp_url=state.get("external_amqp"),
        redis_url=state.get("external_redis"),
        heartbeat_interval=float(state.get("heartbeat_interval") or 1.0),
        # the run's own TTL and restart threshold (options of the session that deployed it)
        ttl=float(state.get("heartbeat_ttl") or DEFAULT_TTL),
        degraded_threshold=float(state.get("degraded_threshold") or DEFAULT_DEGRADED_THRESHOLD),
    )


def _last_version(workdir: Path) -> int:
    try:
        return int((read_state(workdir).get("messaging") or {}).get("last_version") or 0)
    except (TypeError, ValueError):
        return 0
