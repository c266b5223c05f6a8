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

This module holds what sharing needs without pytest (the shared files, the attached backend,
what an attaching worker is told); the pytest side is ``pytest_bannou.plugin.sharing``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._support.files import atomic_write
from ..backends.base import Backend
from ..errors import BannouError
from .environment import Environment
from .runs import ensure_run_directory, run_directory

LOCK_GRACE = 60.0  # seconds beyond the ready timeout a worker waits for another one's deploy


def shared_dir(run_id: str) -> Path:
    return run_directory(run_id) / "shared"


def ensure_shared_dir(run_id: str) -> Path:
    """The shared directory of ``run_id``, created 0700 (its files name the environments)."""
    ensure_run_directory(run_directory(run_id))
    return ensure_run_directory(shared_dir(run_id))


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
    """Whole or not at all, 0600 (readers in other workers never see half a file)."""
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
