"""The nodes' Services, and how pods find them on clusters with and without cluster DNS.

Nodes reach each other by Service name (``KubernetesBackend.peer_address``; presets' URLs such
as ``Server=mysql``). Cluster DNS (CoreDNS) answers those names; a cluster without it (the
single-node test cluster here) does not. So the Services of an environment are created before its
Deployments, and every node's pod template gets ``hostAliases`` mapping each Service name (short
and namespace-qualified) to its cluster IP: the names resolve from ``/etc/hosts`` either way.

A Service recreated when its node changes asks for its old cluster IP, so the other pods'
``/etc/hosts`` stay right. A node *added* later gets a new IP that pods already running do not
know (their ``/etc/hosts`` is fixed at pod start): on a cluster without DNS they learn it when
they are next recreated (a change or ``restart`` of their node). Patching every other Deployment
instead would be a rolling restart of nodes that did not change (losing the in-memory state of
redis, rabbitmq or mysql), which a live change must not do.

A Service routes some time after its pods are ready: the endpoints controller lists a pod once
the kubelet has seen it ready (the plugin's own readiness goes through port-forwards, straight to
the pod), and kube-proxy programs the node a moment later, longer on a loaded machine. Pods that
go through Services (testers) therefore wait for ``_wait_routed`` first.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from ...errors import DeployError
from ...topology.model import Node, Topology
from ..base import BackendOptions
from .connection import REQUEST_TIMEOUT, api_error, call_raw
from .manifests import render_service
from .names import object_name
from .pods import POLL

#: how long a recreated Service waits for its old cluster IP to be released by the deletion
IP_RELEASE_WAIT_S = 30.0
#: the connect limit of one request through a cluster IP from this process
ROUTE_CONNECT_TIMEOUT_S = 2.0


class KubernetesServices:
    """Service handling of ``KubernetesBackend`` (a mixin: it uses ``core``, ``namespace``,
    ``topology``, ``options`` and ``_where``)."""

    namespace: str | None
    topology: Topology | None
    options: BackendOptions
    core: Any
    _where: Callable[[], str]
    #: whether this process runs on a node of the cluster (so kube-proxy routes its cluster IPs)
    _on_a_node: bool | None = None

    def _service_addresses(self) -> dict[str, str]:
        """Service name -> cluster IP of every Service in the namespace (the ``hostAliases``)."""
        assert self.namespace is not None
        try:
            items = self.core.list_namespaced_service(self.namespace, _request_timeout=REQUEST_TIMEOUT).items
        except Exception as exc:
            raise DeployError(
                f"kubernetes {self._where()}: listing Services failed: {api_error(exc)}"
            ) from None
        return {
            s.metadata.name: s.spec.cluster_ip
            for s in items
            if s.spec.cluster_ip and s.spec.cluster_ip != "None"
        }

    def _create_services(
        self, nodes: Sequence[Node], topology: Topology | None = None, exist_ok: bool = False
    ) -> None:
        """Create the Services of ``nodes`` (those with ports); ``exist_ok``: one already there
        (created ahead of a transition) is fine."""
        from kubernetes.client.exceptions import ApiException

        topology = topology or self.topology
        assert topology is not None and self.namespace is not None
        for node in nodes:
            svc = render_service(node, topology, self.options, self.namespace)
            if svc is None:
                continue
            try:
                self.core.create_namespaced_service(self.namespace, svc, _request_timeout=REQUEST_TIMEOUT)
            except ApiException as exc:
                if exist_ok and exc.status == 409:
                    continue
                raise DeployError(
                    f"kubernetes {self._where()}: creating the Service of node {node.name!r} failed: "
                    f"{api_error(exc)}"
                ) from None
            except Exception as exc:
                raise DeployError(
                    f"kubernetes {self._where()}: creating the Service of node {node.name!r} failed: "
                    f"{api_error(exc)}"
                ) from None

    def _recreate_service(self, node: Node) -> None:
        """Delete the node's Service and create it anew (ports or type may have changed) with the
        same cluster IP, which the other pods' ``hostAliases`` name."""
        from kubernetes.client.exceptions import ApiException

        assert self.topology is not None and self.namespace is not None
        name = object_name(node.name)
        old_ip = self._service_addresses().get(name)
        try:
            call_raw(self.core.delete_namespaced_service, name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:  # 404: the node had no ports before
                raise DeployError(
                    f"kubernetes {self._where()}: removing the Service of {node.name!r} failed: "
                    f"{api_error(exc)}"
                ) from None
        svc = render_service(node, self.topology, self.options, self.namespace, cluster_ip=old_ip)
        if svc is None:
            return
        deadline = time.monotonic() + IP_RELEASE_WAIT_S
        while True:
            try:
                self.core.create_namespaced_service(self.namespace, svc, _request_timeout=REQUEST_TIMEOUT)
                return
            except Exception as exc:
                # the deleted Service may still hold the IP (or the name) for a moment
                retry = isinstance(exc, ApiException) and exc.status in (409, 422)
                if not retry or time.monotonic() >= deadline:
                    raise DeployError(
                        f"kubernetes {self._where()}: recreating the Service of {node.name!r}"
                        f"{f' with cluster IP {old_ip}' if old_ip else ''} failed: {api_error(exc)}"
                    ) from None
            time.sleep(POLL)

    def wait_routed(self, topology: Topology, nodes: Sequence[str], deadline: float) -> None:
        self._wait_routed(deadline, topology, nodes)

    def _wait_routed(
        self, deadline: float, topology: Topology | None = None, nodes: Sequence[str] | None = None
    ) -> dict[str, str]:
        """Wait until the Service of every node (of ``nodes``, default all) routes to all its
        replicas; every Service's address.

        Its Endpoints must list as many ready pods as the node has replicas (on every cluster).
        When this process runs on a node of the cluster (kube-proxy routes its cluster IPs too),
        an HTTP node's health path must also answer 2xx through the cluster IP: until kube-proxy
        has programmed a Service, a request goes elsewhere (refused, unanswered, or answered by
        whatever serves unrouted addresses). Elsewhere (a remote cluster) the Endpoints are all
        it can see. Past ``deadline``: ``DeployError`` naming what does not route."""
        topology = topology or self.topology
        assert topology is not None and self.namespace is not None
        wanted = [n for n in topology.nodes if nodes is None or n.name in nodes]
        start = time.monotonic()
        while True:
            missing, unrouted, addresses = self._routing_gaps(wanted, deadline)
            if not missing and not unrouted:
                return addresses
            now = time.monotonic()
            if now >= deadline:
                gaps = "; ".join(missing + unrouted)
                limit = self.options.ready_timeout
                raise DeployError(
                    f"kubernetes {self._where()}: the nodes answer their probes, but after "
                    f"{now - start:.0f} s more their Services do not route to every replica: {gaps}. "
                    f"Look at the pods (kubectl -n {self.namespace} get pods,endpoints; kubectl "
                    f"describe pod: their readinessProbe) or allow more time (ready_timeout, now {limit:g} s)"
                )
            time.sleep(min(POLL, max(0.0, deadline - now)))

    def _runs_on_a_node(self) -> bool:
        """Whether an InternalIP of one of the cluster's nodes is an address of this host
        (asked once; a cluster whose nodes cannot be listed counts as remote)."""
        if self._on_a_node is None:
            try:
                nodes = self.core.list_node(_request_timeout=REQUEST_TIMEOUT).items
                ips = {a.address for n in nodes for a in (n.status.addresses or []) if a.type == "InternalIP"}
            except Exception:
                ips = set()
            self._on_a_node = any(_local_address(ip) for ip in ips)
        return self._on_a_node

    def _routing_gaps(
        self, wanted: Sequence[Node], deadline: float
    ) -> tuple[list[str], list[str], dict[str, str]]:
        """One look: Services whose Endpoints lack ready pods, Services whose cluster IP does not
        answer the health path yet, and the Service addresses."""
        try:
            addresses = self._service_addresses()
        except DeployError as exc:
            return [exc.message.removeprefix(f"kubernetes {self._where()}: ")], [], {}
        missing: list[str] = []
        unrouted: list[str] = []
        for node in wanted:
            name = object_name(node.name)
            if node.replicas <= 0 or name not in addresses:
                continue
            left = deadline - time.monotonic()  # past it: one last look, with short limits
            if left <= 0 and (missing or unrouted):
                break  # the wait has failed: no more requests past its deadline
            ready, error = self._ready_endpoints(name, min(REQUEST_TIMEOUT, max(1.0, left)))
            if error or ready < node.replicas:
                gap = error or f"{ready} of {node.replicas} pods ready behind it"
                missing.append(f"Service {name}: {gap}")
                continue
            path, port = _health_path(node), node.http_port
            if path is None or port is None or not self._runs_on_a_node():
                continue
            probe_limit = node.healthcheck.timeout if node.healthcheck else 0.0
            read_timeout = min(max(ROUTE_CONNECT_TIMEOUT_S, probe_limit), max(0.5, left))
            status = _ask(
                addresses[name], port, path, min(ROUTE_CONNECT_TIMEOUT_S, max(0.5, left)), read_timeout
            )
            if status is None or not 200 <= status < 300:
                answer = "no answer" if status is None else f"HTTP {status}"
                unrouted.append(f"Service {name}: GET {path} at {addresses[name]}:{port} -> {answer}")
        return missing, unrouted, addresses

    def _ready_endpoints(self, service: str, timeout: float) -> tuple[int, str | None]:
        """How many distinct pods the Service's Endpoints list as ready, or why they cannot be read."""
        try:
            ep = self.core.read_namespaced_endpoints(service, self.namespace, _request_timeout=timeout)
        except Exception as exc:
            return 0, f"reading its Endpoints failed: {api_error(exc)}"
        return len({a.ip for subset in ep.subsets or [] for a in subset.addresses or []}), None


def _health_path(node: Node) -> str | None:
    """The path of the node's HTTP readiness check (None: its readiness is not HTTP)."""
    hc = node.healthcheck
    if hc is None or hc.kind != "http":
        return None
    target = str(hc.target or "/health")
    return target if target.startswith("/") else "/" + target


def _local_address(ip: str) -> bool:
    """Whether ``ip`` is an address of this host: the kernel sends to it from itself. (A UDP
    ``connect`` sends nothing; binding would prove nothing under ``ip_nonlocal_bind``.)"""
    try:
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((ip, 9))
            return sock.getsockname()[0] == ip
    except (OSError, ValueError):
        return False


def _ask(ip: str, port: int, path: str, connect_timeout: float, read_timeout: float) -> int | None:
    """The HTTP status of ``GET path`` at ``ip:port``; None when nothing answers (refused, no
    route, silent)."""
    conn = http.client.HTTPConnection(ip, port, timeout=connect_timeout)
    try:
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(read_timeout)
        conn.request("GET", path)
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
