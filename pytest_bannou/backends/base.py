"""The one interface every engine implements (local processes, Compose, Swarm, Kubernetes,
Portainer, third-party backends from the ``pytest_bannou.backends`` entry-point group).

Backends know nothing about pytest. One backend instance owns at most one deployed topology at
a time (an *environment*); the environment layer above drives it:

    backend.deploy(topology, deadline)      # start everything (native readiness where the engine has it)
    health.wait_ready(backend, topology)    # probes through endpoint()/exec()/status(), then wait_routed()
    backend.apply(diff(old, new), deadline) # a transition: only what changed
    backend.teardown()                      # nothing left behind, also after a failed deploy

Every resource a backend creates carries ``self.run_id`` as a label (or in a state file for
processes) so ``clean(run_id)`` can find what a killed session left.

Template methods. ``apply``, ``scale`` and ``restart`` are written once here, with the checks
every engine shares (something is deployed, the node exists, replicas are not negative); an
engine implements the small primitives they call (their defaults raise ``NotImplementedError``,
so a backend written before them, which overrides ``apply``/``scale``/``restart``, still works):

    _remove_nodes(names, deadline)        # STOP (and RECREATE unless updated in place)
    _create_nodes(nodes, deadline)        # START (and RECREATE), honouring dependsOn
    _set_replicas(nodes, deadline)        # SCALE
    _restart_node(node, recreate, deadline)
    _update_nodes(nodes, deadline)        # optional: RECREATE in place (rolling update)
    _check_changes / _changes_done        # optional hooks around a transition

Optional capabilities (one style: methods with a default meaning "not supported", no Protocols
to check). Facts about an engine that the rest of the plugin needs are methods of ``Backend``;
an engine (built-in or registered through the ``pytest_bannou.backends`` entry point) overrides
the ones it supports and so takes part in the stale sweep (``dead_runs``), ``bannou-env render``
(``render``), messaging and testers (``peer_address``, ``tester_network``, ``tester_images``
with ``run_tester_container``), xdist sharing (``attach_info``), changes to kept runs from the CLI
(``reattach``), readiness beyond the probes (``wait_routed``) and fault injection
(``kill_node``, ``pause_node``/``resume_node``, ``disconnect_node``/``reconnect_node``). Callers
only ever call these methods; nothing outside ``backends/`` imports an engine module.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar, Literal

from ..errors import BackendUnavailable, DeployError
from ..topology.diff import Action, Transition, diff
from ..topology.model import Node, Topology

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
        return f"{scheme}://{self.netloc}"

    @property
    def netloc(self) -> str:
        """``host:port`` (``[::1]:port`` for IPv6), as a URL or a ``redis-cli -h`` user writes it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


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


#: ``address(node_name, port) -> (host, port)``: how a node's port is reached from a tester
TesterAddress = Callable[[str, "int | None"], tuple[str, int]]


@dataclass(frozen=True)
class TesterContainer:
    """What ``Backend.run_tester_container`` runs: a tester as the plugin describes it, no
    engine in sight (made by ``testers.container``)."""

    __test__ = False  # not a pytest test class despite the name

    name: str  # the tester's name
    run_id: str  # the environment's run id: labels, so a leftover container is cleaned up
    backend: str  # the environment's backend name
    env_key: str  # the environment's key, for messages
    image: str | None  # None: the engine's own bannou image (a command-only tester)
    command: tuple[str, ...]  # argv ({junit}/{workdir} filled in); empty: the image's own
    target: str  # the node whose network the tester joins
    # the container's environment, given how the nodes are reached on that network
    environment: Callable[[TesterAddress], Mapping[str, str]]
    workdir: Path  # mounted read-write at the same path; the container's working directory
    log_path: Path  # where the output goes, one RFC 3339 timestamp per line
    timeout: float  # seconds; then the container is killed


@dataclass(frozen=True)
class TesterContainerOutcome:
    """How a tester container ended (its output is in ``TesterContainer.log_path``)."""

    exit_code: int | None  # None when killed at the deadline (or it never ran)
    timed_out: bool
    duration: float
    image: str  # the image that ran (or was looked for)
    network: str = ""  # the network it joined
    command: tuple[str, ...] = ()  # argv as run (``python`` may mean the host interpreter)
    error: str | None = None  # why it never ran (no such image, cannot start): a setup error
    container: str = ""  # the container id or pod name that ran (removed by then)


@dataclass
class BackendOptions:
    """Per-session settings every backend receives."""

    run_id: str
    workdir: Path  # the session's run directory (logs, state files, rendered files)
    ready_timeout: float = 120.0
    worker: str = ""  # xdist worker id, part of resource names
    local_command: Sequence[str] | None = None  # ini bannou_local_command
    extra: Mapping[str, str] = field(default_factory=dict)  # backend-specific options


# ``BackendOptions.extra`` key ``Backend.render`` reads: "false" renders every image as a public
# one (no local stand-ins: no pull policy "never", no host mounts), for a machine with a registry
RENDER_STAND_INS = "render_stand_ins"


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

    def apply(self, transition: Transition, deadline: float) -> None:
        """Go from the deployed topology to ``transition.new`` touching only changed nodes
        (nothing deployed: a deploy; no new topology: a teardown)."""
        new = transition.new
        if new is None:
            self.teardown()
            return
        if self.topology is None:
            self.deploy(new, deadline)
            return
        plan = self._plan(transition)
        self._check_changes(plan, deadline)
        self.topology = new
        recreated = [c.new for c in plan.of(Action.RECREATE) if c.new is not None]
        in_place = set(self._update_nodes(recreated, deadline)) if recreated else set()
        again = [n for n in recreated if n.name not in in_place]
        removed = [c.name for c in plan.of(Action.STOP)] + [n.name for n in again]
        if removed:
            self._remove_nodes(removed, deadline)
        created = [c.new for c in plan.of(Action.START) if c.new is not None] + again
        if created:
            self._create_nodes(created, deadline)
        scaled = [c.new for c in plan.of(Action.SCALE) if c.new is not None]
        if scaled:
            self._set_replicas(scaled, deadline)
        self._changes_done(plan, deadline)

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

    # --- changes (template methods) -------------------------------------------------------
    def restart(self, node: str, environment: Mapping[str, str] | None = None) -> None:
        """Restart a node's replicas; with ``environment``, recreate them with it merged in."""
        n = self.deployed_node(node)
        if environment:
            n = replace(n, environment={**n.environment, **environment})
            self._set_node(n)
        self._restart_node(n, bool(environment), time.monotonic() + self.options.ready_timeout)

    def scale(self, node: str, replicas: int) -> None:
        """Change a node's replica count."""
        if replicas < 0:
            raise DeployError(
                f"{self.name} backend: cannot scale node {node!r} to {replicas} replicas (must be >= 0)"
            )
        old = self.topology
        n = replace(self.deployed_node(node), replicas=replicas)
        self._set_node(n)
        deadline = time.monotonic() + self.options.ready_timeout
        self._set_replicas([n], deadline)
        assert self.topology is not None
        self._changes_done(diff(old, self.topology), deadline)

    def deployed_node(self, node: str) -> Node:
        """The deployed node called ``node``; a ``DeployError`` when nothing is deployed or the
        topology has no such node."""
        if self.topology is None:
            raise DeployError(f"{self.name} backend: nothing is deployed")
        try:
            return self.topology.node(node)
        except KeyError as exc:
            raise DeployError(str(exc.args[0])) from None

    def _set_node(self, node: Node) -> None:
        """Replace the deployed topology's definition of ``node`` (same name)."""
        assert self.topology is not None
        self.topology = self.topology.with_nodes(
            n if n.name != node.name else node for n in self.topology.nodes
        )

    # --- primitives the templates call ------------------------------------------------------
    def _plan(self, transition: Transition) -> Transition:
        """The changes to make for ``transition`` (engines that know better re-diff here)."""
        return transition

    def _check_changes(self, plan: Transition, deadline: float) -> None:
        """Fail before anything changes (missing images, nodes that cannot run here)."""
        return None

    def _update_nodes(self, nodes: Sequence[Node], deadline: float) -> Sequence[str]:
        """Recreate ``nodes`` in place (a rolling update); the names done this way. The default
        does none: the rest are removed and created again."""
        return ()

    def _remove_nodes(self, names: Sequence[str], deadline: float) -> None:
        """Remove every replica of the named nodes (already gone from ``self.topology``)."""
        raise NotImplementedError(self._primitive_missing("_remove_nodes"))

    def _create_nodes(self, nodes: Sequence[Node], deadline: float) -> None:
        """Start ``nodes`` (already part of ``self.topology``), dependencies first."""
        raise NotImplementedError(self._primitive_missing("_create_nodes"))

    def _set_replicas(self, nodes: Sequence[Node], deadline: float) -> None:
        """Give each of ``nodes`` (already in ``self.topology``) its ``replicas`` count."""
        raise NotImplementedError(self._primitive_missing("_set_replicas"))

    def _restart_node(self, node: Node, recreate: bool, deadline: float) -> None:
        """Restart every replica of ``node``; with ``recreate``, from its (changed) definition."""
        raise NotImplementedError(self._primitive_missing("_restart_node"))

    def _primitive_missing(self, name: str) -> str:
        return (
            f"backend {self.name!r} ({type(self).__name__}) implements neither {name}() nor the "
            "apply/scale/restart that call it; see pytest_bannou.backends.base"
        )

    def _changes_done(self, plan: Transition, deadline: float) -> None:
        """After a transition or a scale: wait for rollouts, save state, forget caches."""
        return None

    # --- optional capabilities (defaults: not supported) ------------------------------------
    @classmethod
    def dead_runs(cls) -> set[str] | None:
        """Run ids whose owning session is gone (the stale sweep removes them with
        ``clean(run_id)``); None when this engine cannot tell (the sweep then calls
        ``clean(None)`` unless some run is kept)."""
        return None

    @classmethod
    def render(
        cls, topology: Topology, options: BackendOptions, warn: Callable[[str], None] | None = None
    ) -> str:
        """The file(s) that run ``topology`` on this engine by hand, without owner labels (a
        file run by hand has no owning session); ``warn`` gets notes for the user. Images the
        plugin builds on this host (stand-ins) may be marked never to be pulled, public images
        are written as a user would; ``options.extra[RENDER_STAND_INS] == "false"`` asks for
        public images only."""
        raise BackendUnavailable(
            f"backend {cls.name!r} has no file to render; render supports: compose, swarm, kubernetes"
        )

    @classmethod
    def peer_address(cls, node: Node, port: int) -> Endpoint | None:
        """Where the other nodes of an environment reach ``port`` of ``node``, known before
        anything starts (a network alias and the container port); None when peers reach each
        other only through ``endpoint()``, known once the node runs."""
        return None

    @classmethod
    def tester_network(cls) -> str | None:
        """The engine on which a tester container can join the environment's network (``"docker"``:
        the local Docker Engine, containers labelled with the run id); None: testers run as
        processes on this host against ``endpoint()``. A backend that names one implements
        ``run_tester_container``."""
        return None

    def tester_images(self) -> Availability:
        """Whether a tester given as an ``image`` can run against this (deployed) environment
        through ``run_tester_container`` (called on the instance); when not, the reason names
        what to install or start, and the tester item is skipped with it. Engines with a
        ``tester_network()`` run every tester as a container and need not override this."""
        if self.tester_network() is not None:
            return Availability(True)
        return Availability(
            False,
            f"the {self.name} backend cannot run a tester given as an `image`; run it on a backend "
            "that can (local with Docker, compose, swarm, kubernetes, portainer) or give it a `command`",
        )

    @classmethod
    def run_tester_container(cls, tester: TesterContainer) -> TesterContainerOutcome:
        """Run ``tester`` as a container (a pod) where it reaches the environment's nodes and wait
        for it (at most ``tester.timeout`` seconds: then it is killed), its output in
        ``tester.log_path``; remove it. A missing image or a container that cannot start is an
        outcome with ``error``; a target without a running container raises ``BannouError``.
        Engines whose containers need the deployed environment (a namespace, a stack) override
        it as an instance method; the plugin calls it on the instance for image testers."""
        raise BackendUnavailable(
            f"backend {cls.name!r} cannot run tester containers (its tester_network() is "
            f"{cls.tester_network()!r}); give tester {tester.name!r} a `command` to run it as a process"
        )

    # fault injection (``Environment.kill``/``pause``/...): one method per fault, a default that
    # names the backends that can; an engine overrides the ones it has
    fault_backends: ClassVar[Mapping[str, str]] = {
        "kill": "local, compose, swarm, kubernetes, portainer",  # what overrides each below
        "pause": "local, compose, swarm, portainer",
        "disconnect": "compose, swarm, portainer",
    }

    def kill_node(self, node: str, replica: int | None = None) -> None:
        """Kill the node's replica (every replica when None) at once, as SIGKILL does; the
        engine's own restart behaviour (Swarm, Kubernetes) is left to act."""
        raise self.fault_unsupported("kill")

    def pause_node(self, node: str) -> None:
        """Freeze every replica of the node without ending it (SIGSTOP, ``docker pause``)."""
        raise self.fault_unsupported("pause")

    def resume_node(self, node: str) -> None:
        """Undo ``pause_node``; a node that is not paused is left as it is."""
        raise self.fault_unsupported("pause")

    def disconnect_node(self, node: str) -> None:
        """Cut the node off from its peers and from the tests (it keeps running)."""
        raise self.fault_unsupported("disconnect")

    def reconnect_node(self, node: str) -> None:
        """Undo ``disconnect_node``; a node that is connected is left as it is."""
        raise self.fault_unsupported("disconnect")

    def fault_unsupported(self, fault: str, why: str = "") -> BackendUnavailable:
        """The error for a fault this engine cannot make, naming the backends that can."""
        reason = f" ({why})" if why else ""
        return BackendUnavailable(
            f"fault {fault!r} is not supported by the {self.name} backend{reason}; backends that "
            f"can: {self.fault_backends.get(fault, 'none')}"
        )

    def reattach(self, topology: Topology, deadline: float) -> None:
        """Take over ``topology``, left running under this run id by another process (a kept
        run that ``bannou-env update``/``rollback`` changes): afterwards this instance can
        ``apply``, ``status``, ``endpoint`` as if it had deployed it, and the nodes it does not
        change keep running untouched. The default: not supported (the CLI then redeploys)."""
        raise BackendUnavailable(
            f"backend {self.name!r} cannot take over an environment another process deployed;"
            " bannou-env update/rollback redeploy it instead"
        )

    def wait_routed(self, topology: Topology, nodes: Sequence[str], deadline: float) -> None:
        """Once ``nodes`` of ``topology`` are ready (their probes, through ``endpoint``): wait
        until they are also reached the way nodes and testers address each other. Kubernetes:
        through Services, which route some time after their pods are ready. Default: nothing
        in between, a node's address is the node."""
        return None

    def detach(self) -> None:
        """Let go of a run this instance took over (``reattach``) or deployed and leaves running:
        close what only this process needs (port-forwards, clients), stop nothing. Default:
        nothing to close."""
        return None

    def kept_hints(self) -> list[str]:
        """Lines for the user after the URLs of a run left running (``bannou-env deploy``,
        ``update``, ``rollback``, ``status``) when those URLs live only as long as this process
        (kubernetes' port-forwards): what they are and how to reach a node afterwards. Default:
        none (the URLs stay valid)."""
        return []

    def attach_info(self) -> dict[str, object]:
        """What another xdist worker needs beyond endpoints and status to use this environment
        (``backends.attached``): ``logs`` (node -> log files it can read), ``pid_ids`` (replica
        ids are PIDs on this host, so liveness can be checked)."""
        return {}

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
