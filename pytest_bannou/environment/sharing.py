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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._support.files import atomic_write
from .._support.pids import pid_alive
from ..backends.base import Availability, Backend, BackendOptions, Endpoint, ExecResult, ReplicaStatus
from ..errors import BannouError, DeployError
from ..topology.model import Topology, Transition
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


class AttachedBackend(Backend):
    """Read-only view of an environment another worker deployed (from its shared file)."""

    name = "attached"

    def __init__(self, options: BackendOptions, data: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.data = data
        self.name = str(data.get("backend", "attached"))

    @classmethod
    def available(cls) -> Availability:
        return Availability(True)

    def _refuse(self, what: str) -> DeployError:
        why = self.data.get("why") or (
            f"is shared by every xdist worker (bannou_share = session) and was deployed by "
            f"{self.data.get('owner')}; tests that change it must run with bannou_share = none"
        )
        return DeployError(f"{what}: environment {self.data.get('key')!r} {why}")

    def deploy(self, topology: Topology, deadline: float) -> None:
        raise self._refuse("deploy")

    def apply(self, transition: Transition, deadline: float) -> None:
        raise self._refuse("transition")

    def teardown(self) -> None:
        """Nothing: the deploying worker or the controller removes shared environments."""

    @classmethod
    def clean(cls, run_id: str | None = None, options: BackendOptions | None = None) -> list[str]:
        return []

    def status(self) -> list[ReplicaStatus]:
        out = []
        for r in self.data.get("replicas", []):
            state = r.get("state", "unknown")
            if self.name == "local" and str(r.get("id", "")).isdigit():
                state = "running" if pid_alive(int(r["id"])) else "exited"
            out.append(ReplicaStatus(r["node"], int(r["replica"]), state, str(r.get("id", ""))))
        return out

    def endpoint(self, node: str, port: int | None = None, replica: int = 0) -> Endpoint:
        ports = self.data.get("endpoints", {}).get(node, [])
        if replica >= len(ports):
            raise DeployError(f"shared environment: node {node!r} has no replica {replica} with ports")
        key = str(port) if port is not None else str(self.data.get("http_ports", {}).get(node))
        found = ports[replica].get(key)
        if found is None:
            raise DeployError(
                f"shared environment: node {node!r} has no port {port}; ports: {sorted(ports[replica])}"
            )
        return Endpoint(found[0], int(found[1]))

    def logs(self, node: str, tail: int | None = None) -> str:
        paths = self.data.get("logs", {}).get(node)
        if not paths:
            return f"(logs of shared environment nodes: bannou-env logs {self.run_id} {node})"
        lines: list[str] = []
        for p in paths:
            with contextlib.suppress(OSError):
                lines += Path(p).read_text(errors="replace").splitlines(keepends=True)
        return "".join(lines[-tail:] if tail else lines)

    def exec(self, node: str, argv: Sequence[str], timeout: float = 10.0, replica: int = 0) -> ExecResult:
        raise self._refuse("exec")

    def restart(self, node: str, environment: Mapping[str, str] | None = None) -> None:
        raise self._refuse(f"restart {node}")

    def scale(self, node: str, replicas: int) -> None:
        raise self._refuse(f"scale {node}")


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
    logs = {
        name: [str(r.log_path) for r in reps]
        for name, reps in getattr(backend, "_replicas", {}).items()
        if all(hasattr(r, "log_path") for r in reps)
    }
    return {"endpoints": endpoints, "http_ports": http_ports, "replicas": replicas, "logs": logs}
