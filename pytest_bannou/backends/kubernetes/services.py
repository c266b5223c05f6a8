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
#: the limit of one request through a cluster IP from this process
ROUTE_PROBE_TIMEOUT_S = 2.0


class KubernetesServices:
    """Service handling of ``KubernetesBackend`` (a mixin: it uses ``core``, ``namespace``,
    ``topology``, ``options`` and ``_where``)."""

    namespace: str | None
    topology: Topology | None
    options: BackendOptions
    core: Any
    _where: Callable[[], str]

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

    def _wait_routed(self, deadline: float) -> dict[str, str]:
        """Wait until every node's Service routes to all its replicas; its Service addresses.

        Its Endpoints must list as many ready pods as the node has replicas (on every cluster).
        Where this process reaches cluster IPs (kube-proxy on this machine), an HTTP node's
        health path must also answer 2xx through the cluster IP: until kube-proxy has
        programmed it, a request goes elsewhere (refused, or to whatever answers unrouted
        addresses). A cluster IP that does not answer at all is out of this process's reach
        and not asked again; one that still answers wrongly at the deadline, while its
        Endpoints are complete, is left to the pods (a host may route differently from them).
        Past ``deadline`` with Endpoints missing: ``DeployError`` naming them."""
        assert self.topology is not None and self.namespace is not None
        out_of_reach: set[str] = set()
        while True:
            missing: list[str] = []
            unrouted: list[str] = []
            try:
                addresses = self._service_addresses()
            except DeployError as exc:
                addresses, missing = {}, [str(exc)]
            for node in self.topology.nodes:
                name = object_name(node.name)
                if node.replicas <= 0 or name not in addresses:
                    continue
                ready = self._ready_endpoints(name)
                if ready < node.replicas:
                    missing.append(f"Service {name}: {ready} of {node.replicas} pods ready behind it")
                    continue
                path = _health_path(node)
                if path is None or addresses[name] in out_of_reach or node.http_port is None:
                    continue
                status = _ask(addresses[name], node.http_port, path)
                if status is None:
                    out_of_reach.add(addresses[name])
                elif not 200 <= status < 300:
                    unrouted.append(f"Service {name} ({addresses[name]}:{node.http_port}{path}) -> {status}")
            if not missing and (not unrouted or time.monotonic() >= deadline):
                return addresses
            if time.monotonic() >= deadline:
                raise DeployError(
                    f"kubernetes {self._where()}: the environment's Services do not route to every "
                    f"replica yet: {'; '.join(missing)} (kubectl -n {self.namespace} get endpoints)"
                )
            time.sleep(POLL)

    def _ready_endpoints(self, service: str) -> int:
        """How many distinct pods the Service's Endpoints list as ready (0 if it cannot be read)."""
        try:
            ep = self.core.read_namespaced_endpoints(
                service, self.namespace, _request_timeout=REQUEST_TIMEOUT
            )
        except Exception:
            return 0
        return len({a.ip for subset in ep.subsets or [] for a in subset.addresses or []})


def _health_path(node: Node) -> str | None:
    """The path of the node's HTTP readiness check (None: its readiness is not HTTP)."""
    hc = node.healthcheck
    if hc is None or hc.kind != "http":
        return None
    target = str(hc.target or "/health")
    return target if target.startswith("/") else "/" + target


def _ask(ip: str, port: int, path: str) -> int | None:
    """The HTTP status of ``GET path`` at ``ip:port``. A refused connection counts as 503
    (kube-proxy rejects a Service without endpoints), no answer after connecting as 504; None
    when no connection can be made at all (cluster IPs out of this process's reach)."""
    conn = http.client.HTTPConnection(ip, port, timeout=ROUTE_PROBE_TIMEOUT_S)
    try:
        try:
            conn.connect()
        except ConnectionRefusedError:
            return 503
        except OSError:
            return None
        try:
            conn.request("GET", path)
            return conn.getresponse().status
        except (OSError, http.client.HTTPException):
            return 504
    finally:
        conn.close()
