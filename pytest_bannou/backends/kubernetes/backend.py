"""Kubernetes backend: one namespace per environment, a Deployment and a Service per node.

The resolved topology is rendered to plain manifests (``manifests``) and created through the
official client.

``deploy`` returns once every pod has started (image present, container created), failing fast
with the image and how to build it when the node cannot get it; readiness is probed from the test
process by ``health.wait_ready`` as on every backend (set ``extra["kubernetes_wait_rollout"]`` to
``"true"`` to also wait for the rollout). ``wait_rollout`` (observedGeneration, updatedReplicas,
availableReplicas, no old pods) is what ``apply``, ``restart`` and ``scale`` wait for; a pod in
CrashLoopBackOff / ImagePullBackOff / ErrImageNeverPull / Error fails it at once with the pod's
reason and last log lines.

The test process reaches a replica through the API server (``portforward``): ``endpoint`` opens
a listener on 127.0.0.1 per pod and port that relays each accepted connection over its own
port-forward websocket, so it works on any cluster, without routes to pod IPs. With
``extra["kubernetes_service_type"] = "NodePort"`` the Service is a NodePort and ``endpoint``
returns the node address (``extra["kubernetes_node_address"]``, default the pod's host IP) and
node port, load-balanced over the replicas.

Teardown deletes the namespace and waits, up to ``extra["kubernetes_teardown_timeout"]`` seconds
(default 60), until its pods are gone: that is when nothing runs any more (a terminating pod whose
containers have all stopped is removed without grace, since the kubelet keeps its object up to
50 s longer for bookkeeping). Waiting for the
namespace object itself (``extra["kubernetes_teardown_wait"] = "namespace"``) costs another
10-25 s of namespace-controller requeues on a healthy cluster. ``clean`` finds namespaces by the
run-id label across the cluster (without a run id: those whose owner process is dead).

Kubeconfig: see ``connection``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import yaml

from ...errors import DeployError, NodeNotReady
from ...topology.diff import Action, Transition
from ...topology.model import Node, Topology
from ..base import (
    LABEL_PRESET,
    LABEL_RUN_ID,
    Availability,
    Backend,
    BackendOptions,
    Endpoint,
    ExecResult,
    ReplicaStatus,
)
from ..docker import engine as _docker
from .connection import REQUEST_TIMEOUT, Connection, api_error, availability, call_raw, check_cluster, connect
from .faults import KubernetesFaults
from .kept import KubernetesReattach
from .manifests import (
    ImageMeta,
    hand_manifests,
    local_image_meta,
    render_deployment,
    render_namespace,
)
from .names import (
    ANNOTATION_RESTARTED_AT,
    ANNOTATION_RESTARTS,
    label_value,
    namespace_name,
    object_name,
    resource_labels,
    selector,
)
from .options import float_option, option, service_type
from .pods import (
    LOG_TAIL,
    POLL,
    by_node,
    delete_namespace,
    exec_in_pod,
    live_pods,
    not_started,
    pod_status,
    pod_summary,
    raise_if_hopeless,
    raise_if_replica_failure,
    read_logs,
    rollout_state,
    wait_gone,
)
from .portforward import Forwarder, pod_forwarder
from .services import KubernetesServices
from .testers import KubernetesTesters


class KubernetesBackend(KubernetesFaults, KubernetesTesters, KubernetesServices, KubernetesReattach, Backend):
    name: ClassVar[str] = "kubernetes"
    aliases: ClassVar[tuple[str, ...]] = ("k8s",)

    def __init__(self, options: BackendOptions) -> None:
        super().__init__(options)
        self.namespace: str | None = None
        self._conn: Connection | None = None
        self._api: Any = None
        self._stream_api: Any = None
        self._stream_lock = threading.Lock()  # the client's stream helpers patch their ApiClient
        self._images: dict[str, ImageMeta] = {}
        self._forwarders: dict[tuple[str, int], Forwarder] = {}
        self._fw_lock = threading.Lock()

    # capability
    @classmethod
    def available(cls) -> Availability:
        return availability(None)

    # plumbing
    def _connect(self) -> None:
        if self._api is not None:
            return
        from kubernetes import client

        conn = connect(self.options)
        check_cluster(conn)
        self._conn = conn
        self._api = client.ApiClient(conn.configuration)
        self._stream_api = client.ApiClient(conn.configuration)

    @property
    def core(self) -> Any:
        from kubernetes import client

        self._connect()
        return client.CoreV1Api(self._api)

    @property
    def apps(self) -> Any:
        from kubernetes import client

        self._connect()
        return client.AppsV1Api(self._api)

    def _stream_core(self) -> Any:
        from kubernetes import client

        self._connect()
        return client.CoreV1Api(self._stream_api)

    def _where(self) -> str:
        host = self._conn.host if self._conn else "?"
        return f"namespace {self.namespace} on {host}"

    def deployed_node(self, node: str) -> Node:
        if self.namespace is None:
            raise DeployError("kubernetes backend: nothing is deployed")
        return super().deployed_node(node)

    def _require(self, node: str) -> Node:
        return self.deployed_node(node)

    # pods
    def _pods(self, node: str | None = None) -> list[Any]:
        """Live (not terminating) pods of this environment, optionally of one node."""
        if self.namespace is None:
            return []
        return live_pods(self.core, self.namespace, self.run_id, node)

    def _by_node(self, pods: Sequence[Any]) -> dict[str, list[Any]]:
        assert self.topology is not None
        return by_node(self.topology, pods)

    def _pod(self, node: str, replica: int) -> Any:
        self._require(node)
        pods = self._pods(node)
        if replica < 0 or replica >= len(pods):
            raise DeployError(
                f"kubernetes {self._where()}: node {node!r} has no replica {replica} (live pods: {len(pods)})"
            )
        return pods[replica]

    # lifecycle
    def deploy(self, topology: Topology, deadline: float) -> None:
        if self.topology is not None:
            raise DeployError(
                f"kubernetes {self._where()} already runs preset {self.topology.preset!r}; "
                "use apply() for a transition or teardown() first"
            )
        self._connect()
        service_type(self.options)  # a bad option fails before anything is created
        self._images = local_image_meta(topology)
        self.namespace = namespace_name(self.options, topology)
        self.topology = topology
        try:
            self.core.create_namespace(
                render_namespace(topology, self.options, self.namespace), _request_timeout=REQUEST_TIMEOUT
            )
        except Exception as exc:
            ns, self.namespace, self.topology = self.namespace, None, None
            raise DeployError(f"kubernetes: creating namespace {ns} failed: {api_error(exc)}") from None
        self._create_services(topology.nodes)  # first: every pod gets every Service's address
        self._create_deployments(topology.nodes)
        self.wait_started(topology.node_names, deadline)
        if option(self.options, "kubernetes_wait_rollout").lower() in ("1", "true", "yes"):
            self.wait_rollout(topology.node_names, deadline)

    def _create_deployments(self, nodes: Sequence[Node]) -> None:
        """The Deployments of ``nodes``, their pods knowing every Service there is (``services``)."""
        assert self.topology is not None and self.namespace is not None
        aliases = self._service_addresses()
        for node in nodes:
            meta = self._images.get(_docker.image_for(node))
            dep = render_deployment(node, self.topology, self.options, self.namespace, meta, aliases=aliases)
            try:
                self.apps.create_namespaced_deployment(self.namespace, dep, _request_timeout=REQUEST_TIMEOUT)
            except Exception as exc:
                raise DeployError(
                    f"kubernetes {self._where()}: creating node {node.name!r} failed: {api_error(exc)}"
                ) from None

    def _delete_node(self, node: str) -> None:
        assert self.namespace is not None
        from kubernetes.client.exceptions import ApiException

        name = object_name(node)
        for call in (self.apps.delete_namespaced_deployment, self.core.delete_namespaced_service):
            try:
                call_raw(call, name, self.namespace, propagation_policy="Background")
            except ApiException as exc:
                if exc.status != 404:
                    raise DeployError(
                        f"kubernetes {self._where()}: removing node {node!r} failed: {api_error(exc)}"
                    ) from None
        sel = ",".join(f"{k}={v}" for k, v in selector(self.options, node).items())
        with contextlib.suppress(Exception):  # the ReplicaSet's pods go with it; do not wait for grace
            call_raw(self.core.delete_collection_namespaced_pod, self.namespace, label_selector=sel)

    def apply(self, transition: Transition, deadline: float) -> None:
        if self.namespace is None:
            self.topology = None  # a failed deploy: deploy again
        super().apply(transition, deadline)

    # transitions (``Backend.apply`` calls these)
    def _check_changes(self, plan: Transition, deadline: float) -> None:
        assert plan.new is not None and self.namespace is not None
        self._images.update(local_image_meta(plan.new))
        with contextlib.suppress(Exception):
            self.core.patch_namespace(
                self.namespace,
                {"metadata": {"labels": resource_labels(self.options, plan.new)}},
                _request_timeout=REQUEST_TIMEOUT,
            )
        # new nodes' Services before any pod is (re)created, so that those pods know them
        self._create_services([c.new for c in plan.of(Action.START) if c.new is not None], plan.new)

    def _remove_nodes(self, names: Sequence[str], deadline: float) -> None:
        for name in names:
            self._delete_node(name)

    def _update_nodes(self, nodes: Sequence[Node], deadline: float) -> Sequence[str]:
        """A changed node is a rolling update of its Deployment (and a new Service)."""
        for node in nodes:
            self._replace_node(node)
        return [n.name for n in nodes]

    def _create_nodes(self, nodes: Sequence[Node], deadline: float) -> None:
        self._create_services(nodes, exist_ok=True)
        self._create_deployments(nodes)

    def _set_replicas(self, nodes: Sequence[Node], deadline: float) -> None:
        for node in nodes:
            self._patch_replicas(node.name, node.replicas)

    def _changes_done(self, plan: Transition, deadline: float) -> None:
        """Wait until every started, recreated or scaled node has rolled out."""
        waiting = [c.name for c in plan.of(Action.START, Action.RECREATE, Action.SCALE)]
        if waiting:
            self.wait_rollout(waiting, deadline)
        self._drop_forwarders(keep={p.metadata.name for p in self._pods()})

    def _replace_node(
        self, node: Node, annotations: Mapping[str, str] | None = None, service: bool = True
    ) -> None:
        """PUT the freshly rendered Deployment (a rolling update when the template changed) and,
        with ``service``, recreate its Service (keeping its cluster IP)."""
        assert self.topology is not None and self.namespace is not None
        name = object_name(node.name)
        dep = render_deployment(
            node,
            self.topology,
            self.options,
            self.namespace,
            self._images.get(_docker.image_for(node)),
            annotations,
            aliases=self._service_addresses(),
        )
        try:
            self.apps.replace_namespaced_deployment(
                name, self.namespace, dep, _request_timeout=REQUEST_TIMEOUT
            )
        except Exception as exc:
            raise DeployError(
                f"kubernetes {self._where()}: updating node {node.name!r} failed: {api_error(exc)}"
            ) from None
        if service:
            self._recreate_service(node)

    def _patch_replicas(self, node: str, replicas: int) -> None:
        assert self.namespace is not None
        try:
            self.apps.patch_namespaced_deployment_scale(
                object_name(node),
                self.namespace,
                {"spec": {"replicas": replicas}},
                _request_timeout=REQUEST_TIMEOUT,
            )
        except Exception as exc:
            raise DeployError(
                f"kubernetes {self._where()}: scaling node {node!r} failed: {api_error(exc)}"
            ) from None

    # waiting
    def wait_started(self, nodes: Sequence[str], deadline: float) -> None:
        """Until every pod of ``nodes`` exists and its container was created (running, exited or
        crash-looping: ``health.wait_ready`` judges those). Image and scheduling problems, which
        never resolve by waiting, raise ``NodeNotReady`` at once."""
        pending: dict[str, str] = {}
        while True:
            pending = {}
            by_node = self._by_node(self._pods())
            for name in nodes:
                node = self._require(name)
                pods = by_node.get(name, [])
                for pod in pods:
                    self._raise_if_hopeless(node, pod, crash=False)
                if len(pods) < node.replicas:
                    pending[name] = f"{len(pods)}/{node.replicas} pods created"
                    self._raise_if_replica_failure(node)
                    continue
                waiting = [d for d in (not_started(p) for p in pods) if d]
                if waiting:
                    pending[name] = "; ".join(waiting)
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise DeployError(
                    f"kubernetes {self._where()}: pods did not start before the deadline: "
                    + "; ".join(f"{n}: {d}" for n, d in pending.items())
                )
            time.sleep(POLL)

    def wait_rollout(self, nodes: Sequence[str] | None = None, deadline: float | None = None) -> None:
        """Until each node's Deployment is rolled out: observedGeneration caught up, every replica
        updated and available, no old pods. A pod in CrashLoopBackOff / an image error / a
        terminated container raises ``NodeNotReady`` at once; the deadline raises it with the
        Deployment's state, each pod's state and the last log lines."""
        assert self.topology is not None and self.namespace is not None
        names = list(nodes) if nodes is not None else list(self.topology.node_names)
        deadline = deadline if deadline is not None else time.monotonic() + self.options.ready_timeout
        start = time.monotonic()
        while True:
            left: dict[str, str] = {}
            by_node = self._by_node(self._pods())
            for name in names:
                node = self._require(name)
                try:
                    dep = self.apps.read_namespaced_deployment(
                        object_name(name), self.namespace, _request_timeout=REQUEST_TIMEOUT
                    )
                except Exception as exc:
                    raise DeployError(
                        f"kubernetes {self._where()}: reading Deployment of {name!r}: {api_error(exc)}"
                    ) from None
                for pod in by_node.get(name, []):
                    self._raise_if_hopeless(node, pod, crash=True)
                self._raise_if_replica_failure(node, dep)
                state = rollout_state(dep)
                if state:
                    pods = by_node.get(name, [])
                    left[name] = state + (
                        f"; pods: {'; '.join(pod_summary(p) for p in pods)}" if pods else ""
                    )
            if not left:
                return
            now = time.monotonic()
            if now >= deadline:
                name, state = next(iter(left.items()))
                raise NodeNotReady(
                    self.topology.preset,
                    name,
                    f"rollout not complete after {now - start:.1f}s (deadline) in {self._where()}: {state}",
                    self._safe_logs(name),
                    self.name,
                )
            time.sleep(min(POLL, max(0.0, deadline - now)))

    def _raise_if_hopeless(self, node: Node, pod: Any, crash: bool) -> None:
        assert self.topology is not None
        raise_if_hopeless(self.topology.preset, node.name, pod, crash, self._safe_logs, self.name)

    def _raise_if_replica_failure(self, node: Node, dep: Any = None) -> None:
        assert self.topology is not None and self.namespace is not None
        if dep is None:
            try:
                dep = self.apps.read_namespaced_deployment(
                    object_name(node.name), self.namespace, _request_timeout=REQUEST_TIMEOUT
                )
            except Exception:
                return
        raise_if_replica_failure(self.topology.preset, node.name, dep, self.name)

    # teardown and clean-up
    def teardown(self) -> None:
        """Delete the namespace and wait (``kubernetes_teardown_timeout``, default 60 s) until its
        pods are gone, or the namespace too with ``kubernetes_teardown_wait=namespace``. Idempotent."""
        self._drop_forwarders()
        if self.namespace is None:
            self.topology = None
            return
        ns = self.namespace
        timeout = float_option(self.options, "kubernetes_teardown_timeout", 60.0)
        wait_for = option(self.options, "kubernetes_teardown_wait", "pods").lower()
        try:
            delete_namespace(self.core, ns)
            wait_gone(
                self.core,
                ns,
                time.monotonic() + timeout,
                namespace_too=wait_for == "namespace",
                host=self._conn.host if self._conn else "",
            )
        finally:
            self.topology = None
            self.namespace = None
        self._close_clients()

    def _close_clients(self) -> None:
        for c in (self._api, self._stream_api):
            with contextlib.suppress(Exception):
                if c is not None:
                    c.close()
        self._api = self._stream_api = None

    @classmethod
    def clean(cls, run_id: str | None = None, options: BackendOptions | None = None) -> list[str]:
        """Delete every namespace labelled with ``run_id`` (or, without one, of dead owners on this
        host) and wait for its pods to go; namespaces already terminating are left to finish."""
        from kubernetes import client

        conn = connect(options)
        check_cluster(conn)
        api_client = client.ApiClient(conn.configuration)
        core = client.CoreV1Api(api_client)
        sel = f"{LABEL_RUN_ID}={label_value(run_id)}" if run_id else LABEL_RUN_ID
        removed: list[str] = []
        timeout = float_option(options, "kubernetes_teardown_timeout", 60.0)
        try:
            victims = []
            for ns in core.list_namespace(label_selector=sel, _request_timeout=REQUEST_TIMEOUT).items:
                labels = ns.metadata.labels or {}
                if ns.status and ns.status.phase == "Terminating":
                    continue
                if run_id is None and _docker.owner_alive(labels):
                    continue
                delete_namespace(core, ns.metadata.name)
                victims.append(ns.metadata.name)
                rid = (ns.metadata.annotations or {}).get(LABEL_RUN_ID) or labels.get(LABEL_RUN_ID, "?")
                removed.append(
                    f"namespace {ns.metadata.name} (run id {rid}, preset {labels.get(LABEL_PRESET, '?')})"
                )
            deadline = time.monotonic() + timeout
            for name in victims:
                wait_gone(core, name, deadline, namespace_too=False, host=conn.host)
        finally:
            api_client.close()
        return removed

    # inspection
    def status(self) -> list[ReplicaStatus]:
        if self.topology is None or self.namespace is None:
            return []
        out: list[ReplicaStatus] = []
        for node, pods in self._by_node(self._pods()).items():
            for i, pod in enumerate(pods):
                out.append(self.with_kills(pod_status(node, i, pod)))
        return out

    def endpoint(self, node: str, port: int | None = None, replica: int = 0) -> Endpoint:
        n = self._require(node)
        port = port if port is not None else n.http_port
        if port is None:
            raise DeployError(f"kubernetes {self._where()}: node {node!r} has no port")
        if port not in n.ports:
            raise DeployError(
                f"kubernetes {self._where()}: node {node!r} has no port {port} (ports: {list(n.ports)})"
            )
        pod = self._pod(node, replica)
        if service_type(self.options) == "NodePort":
            return self._node_port(n, port, pod)
        return self._forward(pod.metadata.name, port)

    def _node_port(self, node: Node, port: int, pod: Any) -> Endpoint:
        assert self.namespace is not None
        svc = self.core.read_namespaced_service(
            object_name(node.name), self.namespace, _request_timeout=REQUEST_TIMEOUT
        )
        for p in svc.spec.ports or []:
            if p.port == port and p.node_port:
                host = option(self.options, "kubernetes_node_address") or pod.status.host_ip
                if not host:
                    raise DeployError(
                        f"kubernetes {self._where()}: pod {pod.metadata.name} has no node address yet"
                    )
                return Endpoint(host, int(p.node_port))
        raise DeployError(
            f"kubernetes {self._where()}: Service {svc.metadata.name} has no node port for {port}"
        )

    def _forward(self, pod: str, port: int) -> Endpoint:
        assert self.namespace is not None
        with self._fw_lock:
            fw = self._forwarders.get((pod, port))
            if fw is None:
                fw = self._forwarders[(pod, port)] = pod_forwarder(
                    self._stream_core(), self._stream_lock, pod, self.namespace, port
                )
        return Endpoint("127.0.0.1", fw.port)

    def _drop_forwarders(self, keep: set[str] | None = None) -> None:
        with self._fw_lock:
            for key in list(self._forwarders):
                if keep is None or key[0] not in keep:
                    self._forwarders.pop(key).close()

    def logs(self, node: str, tail: int | None = None) -> str:
        """Every container of the node's pods, merged by timestamp; a container that crashed and
        waits to restart shows its previous run."""
        self._require(node)
        assert self.namespace is not None
        return read_logs(self.core, self.namespace, self._pods(node), tail)

    def _safe_logs(self, node: str) -> str:
        try:
            return self.logs(node, tail=LOG_TAIL)
        except Exception as exc:
            return f"(logs unavailable: {exc})"

    def exec(self, node: str, argv: Sequence[str], timeout: float = 10.0, replica: int = 0) -> ExecResult:
        pod = self._pod(node, replica)
        assert self.namespace is not None
        return exec_in_pod(
            self._stream_core(), self._stream_lock, pod.metadata.name, self.namespace, argv, timeout
        )

    # changes (``Backend.restart`` calls this)
    def _restart_node(self, node: Node, recreate: bool, deadline: float) -> None:
        """A rolling restart (the pod template's restartedAt annotation, as `kubectl rollout
        restart` does); with ``recreate`` the node's new environment is part of the new
        template. Returns when the rollout is complete."""
        assert self.namespace is not None
        dep = self.apps.read_namespaced_deployment(
            object_name(node.name), self.namespace, _request_timeout=REQUEST_TIMEOUT
        )
        current = dict(dep.spec.template.metadata.annotations or {})
        restarts = int(current.get(ANNOTATION_RESTARTS, "0") or 0) + 1
        annotations = {
            ANNOTATION_RESTARTS: str(restarts),
            ANNOTATION_RESTARTED_AT: _dt.datetime.now(_dt.UTC).isoformat(),
        }
        self._replace_node(node, annotations, service=False)
        self.wait_rollout([node.name], deadline)
        self._drop_forwarders(keep={p.metadata.name for p in self._pods()})

    # optional capabilities (see ``base``)
    @classmethod
    def render(
        cls, topology: Topology, options: BackendOptions, warn: Callable[[str], None] | None = None
    ) -> str:
        """The manifests: ``kubectl apply -f FILE`` creates the namespace, Deployments and
        Services this backend creates."""
        docs = _docker.without_owner(hand_manifests(topology, options, warn))
        return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False)

    @classmethod
    def peer_address(cls, node: Node, port: int) -> Endpoint:
        """Pods reach each other through the node's Service, by node name and container port
        (cluster DNS, or the pods' ``hostAliases``: ``services``)."""
        return Endpoint(node.name, port)

    def describe(self) -> str:
        return (
            f"backend kubernetes, namespace {self.namespace}: remove with `kubectl delete namespace "
            f"{self.namespace}` or `bannou-env clean --run-id {self.run_id}`"
        )
