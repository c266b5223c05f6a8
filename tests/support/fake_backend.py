"""A third-party backend for the capability tests: it implements only the primitives and the
optional capabilities, the way a backend registered through the entry point would."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pytest_bannou.backends.base import (
    Availability,
    Backend,
    BackendOptions,
    Endpoint,
    ExecResult,
    ReplicaStatus,
)
from pytest_bannou.topology.model import Node, Topology

CALLS: list[tuple] = []
DEAD: set[str] = set()


class FakeBackend(Backend):
    name = "fake"

    @classmethod
    def available(cls) -> Availability:
        return Availability(True)

    def deploy(self, topology: Topology, deadline: float) -> None:
        self.topology = topology

    def teardown(self) -> None:
        self.topology = None

    @classmethod
    def clean(cls, run_id: str | None = None, options: BackendOptions | None = None) -> list[str]:
        CALLS.append(("clean", run_id))
        return [f"removed {run_id}"]

    def status(self) -> list[ReplicaStatus]:
        return []

    def endpoint(self, node: str, port: int | None = None, replica: int = 0) -> Endpoint:
        return Endpoint("127.0.0.1", 1)

    def logs(self, node: str, tail: int | None = None) -> str:
        return ""

    def exec(self, node: str, argv: Sequence[str], timeout: float = 10.0, replica: int = 0) -> ExecResult:
        return ExecResult(0, "")

    # primitives
    def _remove_nodes(self, names: Sequence[str], deadline: float) -> None:
        CALLS.append(("remove", tuple(names)))

    def _create_nodes(self, nodes: Sequence[Node], deadline: float) -> None:
        CALLS.append(("create", tuple(n.name for n in nodes)))

    def _set_replicas(self, nodes: Sequence[Node], deadline: float) -> None:
        CALLS.append(("replicas", tuple((n.name, n.replicas) for n in nodes)))

    def _restart_node(self, node: Node, recreate: bool, deadline: float) -> None:
        CALLS.append(("restart", node.name, recreate, dict(node.environment)))

    # optional capabilities
    @classmethod
    def dead_runs(cls) -> set[str]:
        return set(DEAD)

    @classmethod
    def render(
        cls, topology: Topology, options: BackendOptions, warn: Callable[[str], None] | None = None
    ) -> str:
        return f"fake file for {topology.preset} ({', '.join(topology.node_names)})\n"

    @classmethod
    def peer_address(cls, node: Node, port: int) -> Endpoint:
        return Endpoint(f"{node.name}.fake", port)

    def attach_info(self) -> dict[str, object]:
        return {"logs": {"a": ["/nowhere/a.log"]}}
