"""Docker Swarm backend: one swarm service per node, created through the Docker SDK.

Replicas are swarm replicas; ``restart(node, environment)`` is a rolling update (``UpdateConfig``:
one task at a time, start-first); ``scale`` changes the replica count; ``status`` reports the
real state of each slot's newest task (failed tasks count as restarts); logs are those of the
service's task containers (service logs when none is on this engine). ``deploy`` returns once every
slot's container has started; readiness is ``health.wait_ready``'s job.
Every service, its overlay network and its containers carry the run-id labels, so ``teardown``
and ``clean`` find them.

Limitation: engines without IPVS (like this one: no ``ip_vs`` kernel module) cannot run the
ingress routing mesh or VIP load balancing. Services therefore use ``endpoint_mode: dnsrr`` and
publish their ports in *host* mode with engine-assigned host ports: each replica (task) has its
own published port, read from the task's ``PortStatus`` and returned by ``endpoint(node, port,
replica)``. There is no single load-balanced port per service, and a replica's port changes when
its task is replaced. Host-mode ports bind on all interfaces (swarm cannot bind 127.0.0.1);
endpoints are returned on 127.0.0.1. ``exec`` assumes a single-node swarm (the task's container
runs on this engine), which is what tests use.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from ...errors import DeployError, NodeNotReady
from ...topology.diff import Transition
from ...topology.ingress import is_ingress
from ...topology.model import Node, Topology
from ..base import LABEL_NODE, LABEL_RUN_ID, Availability, BackendOptions, Endpoint, ExecResult, ReplicaStatus
from . import engine as _docker
from .compose_file import render_text
from .faults import DockerFaults
from .images import stand_ins_for
from .swarm_spec import render_stack, service_spec
from .testers import TesterContainers

SWARM_SERVICE_ID = "com.docker.swarm.service.id"  # the label swarm puts on a task's container
SWARM_INIT_HINT = "initialise a single-node swarm: docker swarm init --advertise-addr 127.0.0.1"

_TASK_STATES: dict[str, str] = {
    "new": "starting",
    "pending": "starting",
    "assigned": "starting",
    "accepted": "starting",
    "ready": "starting",
    "preparing": "starting",
    "starting": "starting",
    "running": "running",
    "complete": "exited",
    "failed": "exited",
    "rejected": "exited",
    "shutdown": "stopped",
    "remove": "stopped",
    "orphaned": "unknown",
}


def swarm_availability(cli: Any) -> Availability:
    info = cli.info().get("Swarm") or {}
    state = info.get("LocalNodeState", "inactive")
    if state != "active":
        return Availability(False, f"this Docker Engine is not in a swarm (state {state}); {SWARM_INIT_HINT}")
    if not info.get("ControlAvailable"):
        return Availability(False, "this Docker Engine is a swarm worker; services need a manager node")
    return Availability(True, f"swarm manager {info.get('NodeID', '')[:12]}")


def name_prefix(options: BackendOptions, topology: Topology) -> str:
    worker = options.worker or os.environ.get("PYTEST_XDIST_WORKER", "") or "main"
    raw = f"bannou-{options.run_id}-{topology.preset}-{worker}"
    prefix = _docker.sanitize(raw, 200)
    if len(prefix) > 40:  # service names are at most 63 characters
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        prefix = f"{prefix[:31].rstrip('-_')}-{digest}"
    return prefix


class SwarmBackend(DockerFaults, TesterContainers, _docker.EngineBackend):
    name: ClassVar[str] = "swarm"
    aliases: ClassVar[tuple[str, ...]] = ("docker-swarm",)

    def __init__(self, options: BackendOptions) -> None:
        super().__init__(options)
        self.prefix: str | None = None
        self.network: str | None = None
        self._images: dict[str, _docker.ImageInfo] = {}
        self._services: dict[str, str] = {}  # node -> service id
        self._restarts: dict[str, int] = {}  # rolling restarts this instance did, per node

    # capability
    @classmethod
    def available(cls) -> Availability:
        engine = _docker.engine_availability()
        if not engine:
            return engine
        cli = _docker.client(timeout=5)
        try:
            swarm = swarm_availability(cli)
        finally:
            cli.close()
        if not swarm:
            return swarm
        return Availability(True, f"{engine.reason}; {swarm.reason}")

    @classmethod
    def render(
        cls, topology: Topology, options: BackendOptions, warn: Callable[[str], None] | None = None
    ) -> str:
        """The stack file: ``docker stack deploy -c FILE NAME`` runs the services this backend creates."""
        images = stand_ins_for(topology, options, warn)
        doc = render_stack(topology, options, name_prefix(options, topology), images)
        return render_text(_docker.without_owner(doc))

    def _service_name(self, node: str) -> str:
        assert self.prefix
        return _docker.sanitize(f"{self.prefix}-{node}", 63)

    def _create(self, node: Node) -> None:
        assert self.topology is not None and self.prefix is not None and self.network is not None
        spec = service_spec(
            node, self.topology, self.options, self._images, self.prefix, self.network,
            self._service_name(node.name), self.name, self._edge_network(node),
        )  # fmt: skip
        sid = self.cli.api.create_service(**spec)["ID"]
        self._services[node.name] = sid

    def _edge_network(self, node: Node) -> str | None:
        """The ``external`` overlay of bannou's edge set-up, created with the first ingress."""
        if not is_ingress(node):
            return None
        assert self.prefix is not None
        name = f"{self.prefix}-{_docker.EDGE_NETWORK}"
        if not self.cli.api.networks(names=[name]):
            labels = {
                **_docker.resource_labels(self.options, self.topology, self.name),
                _docker.LABEL_EDGE_NETWORK: "true",
            }
            self.cli.api.create_network(name, driver="overlay", attachable=True, labels=labels)
        return name

    # lifecycle
    def deploy(self, topology: Topology, deadline: float) -> None:
        self._endpoints.clear()
        if self.topology is not None:
            raise DeployError(
                f"swarm backend already runs preset {self.topology.preset!r}; use apply() or teardown() first"
            )
        swarm = swarm_availability(self.cli)
        if not swarm:
            raise DeployError(f"swarm backend: {swarm.reason}")
        self._images = _docker.inspect_images(self.cli, topology)
        self.prefix = name_prefix(self.options, topology)
        self.topology = topology
        self.network = f"{self.prefix}-net"
        self.cli.api.create_network(
            self.network,
            driver="overlay",
            attachable=True,
            labels=_docker.resource_labels(self.options, topology, self.name),
        )
        with ThreadPoolExecutor(max_workers=min(8, len(topology.nodes)) or 1) as pool:
            list(pool.map(self._create, topology.nodes))
        self._started(topology.nodes, deadline)

    def reattach(self, topology: Topology, deadline: float) -> None:
        """Take over the services of this run id (kept by another process), found by their
        labels; the next change creates, removes or updates only the services that differ."""
        self._endpoints.clear()
        flt = {"label": [f"{LABEL_RUN_ID}={self.run_id}"]}
        services = {
            (s["Spec"].get("Labels") or {}).get(LABEL_NODE, ""): s for s in self.cli.api.services(filters=flt)
        }
        mine = [services[n.name] for n in topology.nodes if n.name in services]
        if not mine:
            raise DeployError(
                f"swarm backend: run {self.run_id} has no services on this swarm (preset"
                f" {topology.preset!r}); remove it with `bannou-env clean --run-id {self.run_id}`"
                " and deploy it again"
            )
        nets = [n["Name"] for n in self.cli.api.networks(filters=flt) if n["Name"].endswith("-net")]
        self.prefix = nets[0][: -len("-net")] if nets else name_prefix(self.options, topology)
        self.network = f"{self.prefix}-net"
        self._services = {n: s["ID"] for n, s in services.items() if n in topology.node_names}
        self._images = _docker.inspect_images(self.cli, topology)
        self.topology = topology

    # transitions (``Backend.apply`` calls these)
    def _check_changes(self, plan: Transition, deadline: float) -> None:
        assert plan.new is not None
        self._images = _docker.inspect_images(self.cli, plan.new)

    def _remove_nodes(self, names: Sequence[str], deadline: float) -> None:
        """Remove the nodes' services and wait until their containers have stopped (as
        Compose's stop does): swarm stops them asynchronously, and until then they stay on the
        network, answering the node's name (a recreated node's old settings) or, for an
        ingress, taking the next preset's testers to its edge network."""
        sids = {self._services[n] for n in names if n in self._services}
        self._remove_services(names)
        flt = {"label": [f"{LABEL_RUN_ID}={self.run_id}"]}
        while sids and time.monotonic() < deadline:
            running = self.cli.api.containers(filters=flt)
            if not any((c.get("Labels") or {}).get(SWARM_SERVICE_ID) in sids for c in running):
                return
            time.sleep(0.05)

    def _create_nodes(self, nodes: Sequence[Node], deadline: float) -> None:
        for node in nodes:
            self._create_when_name_free(node, deadline)
        self._started(nodes, deadline)

    def _set_replicas(self, nodes: Sequence[Node], deadline: float) -> None:
        for node in nodes:
            self._post_replicas(node.name, node.replicas)
            self._converge(node, deadline)

    def _create_when_name_free(self, node: Node, deadline: float) -> None:
        import docker as docker_sdk

        while True:
            try:
                self._create(node)
                return
            except docker_sdk.errors.APIError as exc:
                if exc.status_code != 409 or time.monotonic() > deadline:
                    raise DeployError(
                        f"swarm: creating service for node {node.name!r} failed: {exc}"
                    ) from None
                time.sleep(0.1)

    def _remove_services(self, nodes: Sequence[str]) -> None:
        import docker as docker_sdk

        for name in nodes:
            sid = self._services.pop(name, None)
            if sid:
                with contextlib.suppress(docker_sdk.errors.NotFound):
                    self.cli.api.remove_service(sid)

    def teardown(self) -> None:
        self._endpoints.clear()
        if self.prefix is None:
            return
        self._remove_services(list(self._services))
        self._services.clear()
        import docker as docker_sdk

        flt = {"label": [f"{LABEL_RUN_ID}={self.run_id}"]}
        mine = [
            s
            for s in self.cli.api.services(filters=flt)
            if s["Spec"].get("Name", "").startswith(self.prefix + "-")
        ]
        for s in mine:
            with contextlib.suppress(docker_sdk.errors.NotFound):
                self.cli.api.remove_service(s["ID"])
        # containers of removed services go away asynchronously; wait, then remove the network
        deadline = time.monotonic() + 30
        names = {self._service_name(n) for n in (self.topology.node_names if self.topology else ())}
        while time.monotonic() < deadline:
            left = [
                c
                for c in self.cli.api.containers(all=True, filters=flt)
                if (c.get("Labels") or {})
                .get("com.docker.swarm.service.name", "")
                .startswith(self.prefix + "-")
                or (c.get("Labels") or {}).get("com.docker.swarm.service.name") in names
            ]
            if not left:
                break
            for c in left:  # speed up: the engine would remove them anyway
                with contextlib.suppress(docker_sdk.errors.APIError):
                    self.cli.api.remove_container(c["Id"], force=True, v=True)
            time.sleep(0.05)
        problems: list[str] = []
        for net in (self.network, f"{self.prefix}-{_docker.EDGE_NETWORK}") if self.network else ():
            if net != self.network and not self.cli.api.networks(names=[net]):
                continue
            problem = _docker.remove_network(self.cli, net)
            if problem:
                problems.append(f"network {net} ({problem})")
        for vol in (self.cli.api.volumes(filters=flt) or {}).get("Volumes") or []:
            if vol["Name"].startswith(self.prefix + "-"):
                problem = _docker.remove_volume(self.cli, vol["Name"])
                if problem:
                    problems.append(f"volume {vol['Name']} ({problem})")
        self.topology = None
        if problems:
            raise DeployError(
                f"swarm backend: teardown left {', '.join(problems)}; remove them with "
                f"`bannou-env clean --run-id {self.run_id}`"
            )

    # tasks
    def _tasks(self, node: str) -> dict[int, dict[str, Any]]:
        """Replica index -> newest task of each live slot (slots ordered by number), with
        ``_restarts`` (failed tasks of the slot) and ``_failed`` (the newest failed one)."""
        n = self._require(node)
        sid = self._services.get(node)
        if sid is None:
            return {}
        slots: dict[int, list[dict[str, Any]]] = {}
        for t in self.cli.api.tasks(filters={"service": sid}):
            slots.setdefault(int(t.get("Slot") or 0), []).append(t)
        live: list[dict[str, Any]] = []
        dead: list[dict[str, Any]] = []  # slots whose last task failed and was not replaced
        for _, ts in sorted(slots.items()):
            # the task meant to run wins, then the most recently created one
            ts.sort(key=lambda t: (t.get("DesiredState") in ("running", "ready"), _created(t)), reverse=True)
            newest = ts[0]
            failed = [t for t in ts if t["Status"].get("State") in ("failed", "rejected")]
            newest["_restarts"] = len(failed)
            newest["_failed"] = failed[0] if failed else None
            if newest.get("DesiredState") in ("running", "ready"):
                live.append(newest)
            elif failed:
                dead.append(newest)
        chosen = (live + dead)[: n.replicas]
        return dict(enumerate(chosen))

    def _task(self, node: str, replica: int) -> dict[str, Any]:
        tasks = self._tasks(node)
        if replica not in tasks:
            known = sorted(tasks) or "none"
            raise DeployError(
                f"swarm service {self._service_name(node)}: no replica {replica} (replicas: {known})"
            )
        return tasks[replica]

    def _fault_containers(self, node: str, replica: int | None) -> list[str]:
        tasks = [self._task(node, replica)] if replica is not None else list(self._tasks(node).values())
        found = (((t.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID") for t in tasks)
        return [cid for cid in found if cid]

    def _fault_network(self) -> str:
        assert self.network is not None
        return self.network

    def reconnect_node(self, node: str) -> None:
        """A task cut off its network loses its published ports for good (connecting it again
        does not bring them back): the node's tasks are replaced instead, a rolling restart."""
        net = self._fault_network()
        if any(net not in self._networks(cid) for cid in self._fault_containers(node, None)):
            self.restart(node)

    # inspection
    def status(self) -> list[ReplicaStatus]:
        if self.topology is None:
            return []
        out: list[ReplicaStatus] = []
        for node in self.topology.nodes:
            for idx, t in self._tasks(node.name).items():
                out.append(_task_status(node.name, idx, t, self._restarts.get(node.name, 0)))
        return out

    def _lookup_endpoint(self, node: str, port: int | None, replica: int) -> Endpoint:
        n = self._require(node)
        port = port if port is not None else n.http_port
        t = self._task(node, replica)
        for p in (t["Status"].get("PortStatus") or {}).get("Ports") or []:
            if p.get("TargetPort") == port and p.get("PublishedPort"):
                return Endpoint("127.0.0.1", int(p["PublishedPort"]))
        raise DeployError(
            f"swarm service {self._service_name(node)}: replica {replica} has no published port {port} yet "
            f"(task {t['Status'].get('State')})"
        )

    def logs(self, node: str, tail: int | None = None) -> str:
        """The output of the service's task containers (current and previous tasks), read from
        the local engine, which has it at once; service logs (which lag behind through the
        swarm's log broker) when none of the containers is on this engine."""
        import docker as docker_sdk

        self._require(node)
        sid = self._services.get(node)
        if sid is None:
            return ""
        kwargs: dict[str, Any] = {"stdout": True, "stderr": True, "timestamps": True}
        if tail is not None:
            kwargs["tail"] = max(tail, 0)
        chunks: list[bytes] = []
        for t in self.cli.api.tasks(filters={"service": sid}):
            cid = ((t.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")
            if cid:
                with contextlib.suppress(docker_sdk.errors.NotFound):
                    chunks.append(self.cli.api.logs(cid, **kwargs))
        if not chunks:
            raw = self.cli.api.service_logs(sid, **kwargs)
            chunks = [raw if isinstance(raw, bytes) else b"".join(raw)]
        return _docker.merged_logs(chunks, tail)

    def exec(self, node: str, argv: Sequence[str], timeout: float = 10.0, replica: int = 0) -> ExecResult:
        t = self._task(node, replica)
        cid = ((t["Status"].get("ContainerStatus") or {}).get("ContainerID")) or ""
        if not cid or t["Status"].get("State") != "running":
            raise DeployError(
                f"swarm service {self._service_name(node)}: replica {replica} is not running "
                f"(task {t['Status'].get('State')})"
            )
        return _docker.exec_in(self.cli, cid, argv, timeout)

    # changes (``Backend.restart`` calls this)
    def _restart_node(self, node: Node, recreate: bool, deadline: float) -> None:
        """A rolling update of the node's service (forced, so it also happens without changes)."""
        sid = self._services[node.name]
        before = {t["ID"] for t in self.cli.api.tasks(filters={"service": sid})}
        env = [f"{k}={v}" for k, v in _docker.node_environment(node).items()]

        def roll(spec: dict[str, Any]) -> None:
            template = spec["TaskTemplate"]
            template["ContainerSpec"]["Env"] = env
            template["ForceUpdate"] = int(template.get("ForceUpdate", 0)) + 1

        self._update(sid, roll)
        self._restarts[node.name] = self._restarts.get(node.name, 0) + 1
        self._converge(node, deadline, replaced=before)

    def _post_replicas(self, node: str, replicas: int) -> None:
        sid = self._services[node]
        self._update(sid, lambda spec: spec.update(Mode={"Replicated": {"Replicas": replicas}}))

    def _update(self, sid: str, change: Callable[[dict[str, Any]], None]) -> None:
        """Post the service's current spec with ``change`` applied and nothing else touched:
        every part of the spec is passed as it is (``fetch_current_spec`` would re-read it with
        the engine's defaults inserted, which changes the spec and rolls every task)."""
        current = self.cli.api.inspect_service(sid)
        spec = current["Spec"]
        change(spec)
        self.cli.api.update_service(
            sid,
            current["Version"]["Index"],
            task_template=spec.get("TaskTemplate"),
            name=spec.get("Name"),
            labels=spec.get("Labels"),
            mode=spec.get("Mode"),
            update_config=spec.get("UpdateConfig"),
            rollback_config=spec.get("RollbackConfig"),
            endpoint_spec=spec.get("EndpointSpec"),
        )

    # convergence
    def _started(self, nodes: Sequence[Node], deadline: float) -> None:
        """Wait (at most until ``deadline``) until every slot of ``nodes`` has a task that runs
        or has failed, so ``deploy`` returns with containers started like Compose's ``up -d``;
        failures are reported by ``status()`` and ``health.wait_ready``."""
        waiting = list(nodes)
        while waiting and time.monotonic() < deadline:
            still = []
            for node in waiting:
                tasks = self._tasks(node.name)
                started = [t for t in tasks.values() if _container_started(t) or t.get("_failed")]
                if len(started) < node.replicas:
                    still.append(node)
            waiting = still
            if waiting:
                time.sleep(0.05)

    def _converge(self, node: Node, deadline: float, replaced: set[str] | None = None) -> None:
        """Wait until the service runs exactly ``node.replicas`` tasks, none of them in
        ``replaced`` (the tasks before a rolling update), and the old ones are gone; readiness
        itself is ``health.wait_ready``'s job."""
        assert self.topology is not None
        replaced = replaced or set()
        sid = self._services[node.name]
        while True:
            tasks = self.cli.api.tasks(filters={"service": sid})
            running = [t for t in tasks if t["Status"].get("State") == "running"]
            current = [t for t in running if t["ID"] not in replaced and t.get("DesiredState") == "running"]
            stale = [t for t in running if t not in current]
            failed = [
                t
                for t in tasks
                if t["ID"] not in replaced and t["Status"].get("State") in ("failed", "rejected")
            ]
            if failed:
                f = failed[0]["Status"]
                code = (f.get("ContainerStatus") or {}).get("ExitCode")
                raise NodeNotReady(
                    self.topology.preset,
                    node.name,
                    f"a task {f.get('State')} (exit code {code}; {f.get('Err') or f.get('Message')})",
                    self.logs(node.name, 40),
                    self.name,
                )
            if len(current) == node.replicas and not stale:
                return
            if time.monotonic() > deadline:
                states = ", ".join(sorted(t["Status"].get("State", "?") for t in tasks)) or "no tasks"
                raise NodeNotReady(
                    self.topology.preset,
                    node.name,
                    f"service did not converge to {node.replicas} running task(s) "
                    f"before the deadline ({states})",
                    self.logs(node.name, 40),
                    self.name,
                )
            time.sleep(0.05)

    def describe(self) -> str:
        return (
            f"backend swarm, services {self.prefix}-*: remove with `bannou-env clean --run-id {self.run_id}` "
            f"or `docker service rm $(docker service ls -q -f label={LABEL_RUN_ID}={self.run_id})`"
        )


def _container_started(task: Mapping[str, Any]) -> bool:
    """The task's container runs (swarm says ``starting`` until its healthcheck passes)."""
    st = task.get("Status") or {}
    return st.get("State") in ("starting", "running") and bool(
        (st.get("ContainerStatus") or {}).get("ContainerID")
    )


def _created(task: Mapping[str, Any]) -> str:
    """``CreatedAt`` made sortable as text (the engine trims trailing zeros of the fraction)."""
    raw = str(task.get("CreatedAt") or "").rstrip("Z")
    whole, _, frac = raw.partition(".")
    return f"{whole}.{frac:0<9}"


def _task_status(node: str, replica: int, t: Mapping[str, Any], restarts: int = 0) -> ReplicaStatus:
    st = t.get("Status") or {}
    raw = st.get("State", "unknown")
    mapped = _TASK_STATES.get(raw, "unknown")
    cs = st.get("ContainerStatus") or {}
    detail = f"task {raw}" + (f": {st['Err']}" if st.get("Err") else "")
    failed = t.get("_failed")
    if failed is not None and mapped != "running":
        fst = failed["Status"]
        mapped = "exited"
        cs = fst.get("ContainerStatus") or {}
        detail = f"task {fst.get('State')}: {fst.get('Err') or fst.get('Message')}"
    return ReplicaStatus(
        node=node,
        replica=replica,
        state=mapped,  # type: ignore[arg-type]
        id=(cs.get("ContainerID") or t.get("ID", ""))[:12],
        exit_code=cs.get("ExitCode") if mapped == "exited" else None,
        restarts=int(t.get("_restarts", 0)) + restarts,
        detail=detail,
    )
