"""A backend seen from another xdist worker: the read-only view of an environment that one
worker deployed and described (``Backend.attach_info`` plus endpoints and status) in a shared
file; see ``environment.sharing``."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._support.pids import pid_alive
from ..errors import DeployError
from ..topology.diff import Transition
from ..topology.model import Topology
from .base import Availability, Backend, BackendOptions, Endpoint, ExecResult, ReplicaStatus


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
            if self.data.get("pid_ids") and str(r.get("id", "")).isdigit():
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
