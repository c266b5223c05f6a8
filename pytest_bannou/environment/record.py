"""What the session summary and the report need of an environment's history: its ``EnvRecord``
(activations, deploy and ready times, transitions, restarts, outcomes, error) and the text of
its replicas' status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..backends.base import ReplicaStatus


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
    restores: int = 0  # times a test changed it and it was brought back to its preset
    restore_time: float = 0.0  # seconds those restores took, together
    error: str | None = None
    faults: list[dict[str, object]] = field(default_factory=list)  # FaultEvent.to_json(), in order
    outcomes: dict[str, int] = field(
        default_factory=lambda: {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    )

    def merge(self, other: EnvRecord) -> None:
        """Add another process's record of the same environment (pytest-xdist workers)."""
        self.activations += other.activations
        self.transitions += other.transitions
        self.node_restarts += other.node_restarts
        self.restores += other.restores
        self.restore_time += other.restore_time
        for k, v in other.outcomes.items():
            self.outcomes[k] = self.outcomes.get(k, 0) + v
        times = [t for t in (self.deploy_time, other.deploy_time) if t is not None]
        self.deploy_time = max(times) if times else None
        times = [t for t in (self.ready_time, other.ready_time) if t is not None]
        self.ready_time = max(times) if times else None
        self.error = self.error or other.error
        self.faults = sorted([*self.faults, *other.faults], key=lambda f: float(f.get("at") or 0))  # type: ignore[arg-type]


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
