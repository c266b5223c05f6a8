"""The one interface every engine implements (local processes, Compose, Swarm, Kubernetes,
Portainer, third-party backends from the ``pytest_bannou.backends`` entry-point group).

Backends know nothing about pytest. One backend instance owns at most one deployed topology at
a time (an *environment*); the environment layer above drives it:

    backend.deploy(topology, deadline)      # start everything (native readiness where the engine has it)
    health.wait_ready(backend, topology)    # probes through endpoint()/exec()/status()
    backend.apply(diff(old, new), deadline) # a transition: only what changed
    backend.teardown()                      # nothing left behind, also after a failed deploy

Every resource a backend creates carries ``self.run_id`` as a label (or in a state file for
processes) so ``clean(run_id)`` can find what a killed session left.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from ..topology.diff import Transition
from ..topology.model import Topology

LABEL_PREFIX = "io.bannou.pytest"
LABEL_RUN_ID = f"{LABEL_PREFIX}.run-id"
LABEL_PRESET = f"{LABEL_PREFIX}.preset"
LABEL_NODE = f"{LABEL_PREFIX}.node"
LABEL_PRESET_HASH = f"{LABEL_PREFIX}.preset-hash"
LABEL_OWNER_PID = f"{LABEL_PREFIX}.owner-pid"

ReplicaState = Literal["starting", "running", "exited", "stopped", "unknown"]


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""  # why not, and how to get it

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def url(self, scheme: str = "http") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"


@dataclass(frozen=True)
class ReplicaStatus:
    node: str
    replica: int
    state: ReplicaState
    id: str = ""  # pid, container id, pod name, ...
    exit_code: int | None = None
    restarts: int = 0
    detail: str = ""


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str


@dataclass
class BackendOptions:
    """Per-session settings every backend receives."""

    run_id: str
    workdir: Path  # the session's run directory (logs, state files, rendered files)
    ready_timeout: float = 120.0
    worker: str = ""  # xdist worker id, part of resource names
    local_command: Sequence[str] | None = None  # ini bannou_local_command
    extra: Mapping[str, str] = field(default_factory=dict)  # backend-specific options


class Backend(ABC):
    """Abstract engine. Subclasses are thin: they translate a topology into engine calls."""

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: BackendOptions) -> None:
        self.options = options
        self.topology: Topology | None = None

    @property
    def run_id(self) -> str:
        return self.options.run_id

    # --- capability -----------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def available(cls) -> Availability:
        """Whether this engine can run here; the reason names what to install or start."""

    # --- lifecycle ------------------------------------------------------------------------
    @abstractmethod
    def deploy(self, topology: Topology, deadline: float) -> None:
        """Start every node of ``topology``. ``deadline`` is a ``time.monotonic()`` value."""

    @abstractmethod
    def apply(self, transition: Transition, deadline: float) -> None:
        """Go from the deployed topology to ``transition.new`` touching only changed nodes."""

    @abstractmethod
    def teardown(self) -> None:
        """Remove everything this instance created. Idempotent; safe after a failed deploy."""

    @classmethod
    @abstractmethod
    def clean(cls, run_id: str | None = None, options: BackendOptions | None = None) -> list[str]:
        """Remove resources of ``run_id`` (or of every dead session when None); return what was
        removed, one human-readable line each."""

    # --- inspection -----------------------------------------------------------------------
    @abstractmethod
    def status(self) -> list[ReplicaStatus]:
        """One entry per replica of every deployed node."""

    @abstractmethod
    def endpoint(self, node: str, port: int | None = None, replica: int = 0) -> Endpoint:
        """Where the test process reaches ``port`` (a container port; default the node's HTTP
        port) of a node replica."""

    @abstractmethod
    def logs(self, node: str, tail: int | None = None) -> str:
        """Combined output of the node's replicas, oldest first."""

    @abstractmethod
    def exec(self, node: str, argv: Sequence[str], timeout: float = 10.0, replica: int = 0) -> ExecResult:
        """Run a command in the node's context (command healthchecks)."""

    # --- changes --------------------------------------------------------------------------
    @abstractmethod
    def restart(self, node: str, environment: Mapping[str, str] | None = None) -> None:
        """Restart a node's replicas; with ``environment``, recreate them with it merged in."""

    @abstractmethod
    def scale(self, node: str, replicas: int) -> None:
        """Change a node's replica count."""

    # --- helpers --------------------------------------------------------------------------
    def describe(self) -> str:
        """How a user reaches and removes this environment by hand (printed by --bannou-keep)."""
        return (
            f"backend {self.name}, run id {self.run_id}: "
            f"remove with `bannou-env clean --run-id {self.run_id}`"
        )

    @staticmethod
    def remaining(deadline: float) -> float:
        return max(0.0, deadline - time.monotonic())
