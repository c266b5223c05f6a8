"""Testers given as an ``image`` on Kubernetes: a Pod in the environment's namespace.

The pod (``restartPolicy: Never``, ``imagePullPolicy: Never`` like the nodes, the run's labels,
the host paths a locally built image asks for) gets the tester's environment with every node
reached by its Service name and container port, as pods reach each other. The Service names are
also written into the pod's ``/etc/hosts`` (``hostAliases``, the Services' cluster IPs), so they
resolve on clusters without cluster DNS too. The pod is created once those Services route to
every replica (``KubernetesServices._wait_routed``). The test process waits for the container to end,
with the tester's deadline (then the pod is deleted at once and the run reported as timed out;
``activeDeadlineSeconds`` stops it even if this process dies); its output is read from the pod
log with the API server's timestamps (the format ``testers.process`` writes), its exit code from
the container status. The pod is deleted afterwards, and with the namespace anyway.

A ``junit``-format tester writes its XML inside the pod, where the test process cannot read it:
on Kubernetes use a console format (``http-tester``, ``edge-tester``, ``exit-code``).
"""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

from ...errors import BannouError
from ...topology.model import Node, Topology
from ..base import (
    LABEL_NODE,
    Availability,
    BackendOptions,
    TesterContainer,
    TesterContainerOutcome,
)
from ..docker import engine as _docker
from ..docker.testers import command_in_image
from .connection import REQUEST_TIMEOUT, api_error, call_raw
from .manifests import ImageMeta, local_image_meta
from .names import label_value, object_name, resource_labels
from .pods import BUILD_HINT, IMAGE_REASONS, POLL

TESTER_CONTAINER = "tester"
GONE_WAIT_S = 30.0


class KubernetesTesters:
    """``Backend`` tester capabilities of ``KubernetesBackend`` (a mixin: it uses ``core``,
    ``namespace``, ``topology``, ``options``, ``name`` and ``KubernetesServices._wait_routed``)."""

    namespace: str | None
    topology: Topology | None
    _wait_routed: Callable[[float], dict[str, str]]
    options: BackendOptions
    name: str
    core: Any

    def tester_images(self) -> Availability:
        if self.namespace is None:
            return Availability(False, "the kubernetes backend has nothing deployed")
        return Availability(True, f"a pod in namespace {self.namespace}")

    def run_tester_container(self, tester: TesterContainer) -> TesterContainerOutcome:
        """Run ``tester`` as a pod in the namespace and wait for it (see the module docstring)."""
        if self.namespace is None or self.topology is None:
            raise BannouError(f"tester {tester.name!r}: nothing is deployed on the kubernetes backend")
        image = tester.image or _docker.DEFAULT_BANNOU_IMAGE
        meta = self._tester_image_meta(image)
        stand_in = meta is not None and bool(meta.host_mounts)
        argv = command_in_image(tester.command, stand_in, meta.python if meta is not None else "")
        waited = time.monotonic()
        try:  # the pod reaches the nodes through their Services: they must route first
            aliases = self._wait_routed(waited + self.options.ready_timeout)
        except BannouError as exc:
            return TesterContainerOutcome(
                None,
                False,
                time.monotonic() - waited,
                image,
                self.namespace,
                tuple(argv),
                f"tester {tester.name!r}: {exc}",
            )

        def address(node: str, port: int | None) -> tuple[str, int]:
            return object_name(node), int(port or 80)

        manifest = self._tester_pod(tester, image, argv, dict(tester.environment(address)), meta, aliases)
        name = manifest["metadata"]["name"]
        start = time.monotonic()
        try:
            self.core.create_namespaced_pod(self.namespace, manifest, _request_timeout=REQUEST_TIMEOUT)
        except Exception as exc:
            message = (
                f"tester {tester.name!r}: cannot create pod {name} in {self.namespace}: {api_error(exc)}"
            )
            return TesterContainerOutcome(None, False, 0.0, image, self.namespace, tuple(argv), message)
        try:
            return self._follow(tester, name, image, argv, start)
        finally:
            self._delete_tester_pod(name)

    # --- the pod ---------------------------------------------------------------------------------
    def _tester_image_meta(self, image: str) -> ImageMeta | None:
        """What the (locally built) image asks for, read like the nodes' images."""
        probe = Topology(preset="tester", nodes=(Node(name="tester", app_id="tester", image=image),))
        return local_image_meta(probe).get(image)

    def _tester_pod(
        self,
        tester: TesterContainer,
        image: str,
        argv: list[str],
        environment: dict[str, str],
        meta: ImageMeta | None,
        aliases: dict[str, str],
    ) -> dict[str, Any]:
        labels = resource_labels(self.options, self.topology)
        labels[LABEL_NODE] = label_value(f"tester-{tester.name}")
        name = object_name(f"tester-{tester.name}-{uuid.uuid4().hex[:6]}")
        container: dict[str, Any] = {
            "name": TESTER_CONTAINER,
            "image": image,
            "imagePullPolicy": "Never",
            "env": [{"name": k, "value": str(v)} for k, v in environment.items()],
            "workingDir": str(tester.log_path.parent),
            "stdin": False,
            "tty": False,
        }
        if argv:
            container["args"] = argv
        volumes: list[dict[str, Any]] = []
        mounts: list[dict[str, Any]] = []
        for i, path in enumerate(meta.host_mounts if meta else ()):
            volumes.append({"name": f"host-{i}", "hostPath": {"path": path, "type": "Directory"}})
            mounts.append({"name": f"host-{i}", "mountPath": path, "readOnly": True})
        for i, path in enumerate(meta.tmpfs if meta else ()):
            volumes.append({"name": f"tmpfs-{i}", "emptyDir": {"medium": "Memory"}})
            mounts.append({"name": f"tmpfs-{i}", "mountPath": path})
        volumes.append({"name": "workdir", "emptyDir": {}})
        mounts.append({"name": "workdir", "mountPath": str(tester.log_path.parent)})
        container["volumeMounts"] = mounts
        spec: dict[str, Any] = {
            "restartPolicy": "Never",
            "containers": [container],
            "volumes": volumes,
            "terminationGracePeriodSeconds": 0,
            "activeDeadlineSeconds": max(1, math.ceil(tester.timeout)) + 60,
            "enableServiceLinks": False,
            "automountServiceAccountToken": False,
        }
        if aliases:
            by_ip: dict[str, list[str]] = {}
            for host, ip in sorted(aliases.items()):
                by_ip.setdefault(ip, []).append(host)
            spec["hostAliases"] = [{"ip": ip, "hostnames": hosts} for ip, hosts in by_ip.items()]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
            "spec": spec,
        }

    # --- waiting, output, removal --------------------------------------------------------------------
    def _follow(
        self, tester: TesterContainer, name: str, image: str, argv: list[str], start: float
    ) -> TesterContainerOutcome:
        deadline = start + tester.timeout
        exit_code: int | None = None
        timed_out = False
        while True:
            state = self._tester_state(name)
            if state.get("terminated") is not None:
                exit_code = int(state["terminated"].exit_code)
                break
            waiting = state.get("waiting")
            if waiting is not None and waiting.reason in IMAGE_REASONS:
                return TesterContainerOutcome(
                    None,
                    False,
                    time.monotonic() - start,
                    image,
                    str(self.namespace),
                    tuple(argv),
                    f"tester {tester.name!r}: image {image} cannot be used in namespace {self.namespace} "
                    f"({waiting.reason}: {waiting.message or ''}); {BUILD_HINT}",
                    name,
                )
            if time.monotonic() >= deadline:
                timed_out = True
                break
            time.sleep(min(POLL * 2, max(0.05, deadline - time.monotonic())))
        if timed_out:  # the output so far, then the pod is gone at once
            self._save_log(name, tester)
            self._delete_tester_pod(name, wait=False)
        else:
            self._save_log(name, tester)
        return TesterContainerOutcome(
            exit_code,
            timed_out,
            time.monotonic() - start,
            image,
            str(self.namespace),
            tuple(argv),
            container=name,
        )

    def _tester_state(self, name: str) -> dict[str, Any]:
        """The tester container's state (``running``/``waiting``/``terminated``), {} before it has one."""
        try:
            pod = self.core.read_namespaced_pod(name, self.namespace, _request_timeout=REQUEST_TIMEOUT)
        except Exception:
            return {}
        for cs in (pod.status.container_statuses or []) if pod.status else []:
            if cs.name == TESTER_CONTAINER and cs.state is not None:
                return {
                    "running": cs.state.running,
                    "waiting": cs.state.waiting,
                    "terminated": cs.state.terminated,
                }
        return {}

    def _save_log(self, name: str, tester: TesterContainer) -> None:
        data = b""
        with contextlib.suppress(Exception):
            resp = self.core.read_namespaced_pod_log(
                name,
                self.namespace,
                container=TESTER_CONTAINER,
                timestamps=True,
                _preload_content=False,
                _request_timeout=max(REQUEST_TIMEOUT, 60.0),
            )
            data = resp.data
            resp.release_conn()
        tester.log_path.write_bytes(data)

    def _delete_tester_pod(self, name: str, wait: bool = True) -> None:
        """Delete the pod without grace; with ``wait``, until the API server no longer has it."""
        with contextlib.suppress(Exception):
            call_raw(self.core.delete_namespaced_pod, name, self.namespace, grace_period_seconds=0)
        if not wait:
            return
        deadline = time.monotonic() + GONE_WAIT_S
        while time.monotonic() < deadline:
            try:
                self.core.read_namespaced_pod(name, self.namespace, _request_timeout=REQUEST_TIMEOUT)
            except Exception as exc:
                if getattr(exc, "status", None) == 404:
                    return
            time.sleep(POLL)
