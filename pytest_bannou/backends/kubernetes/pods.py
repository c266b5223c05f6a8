"""Pods seen from the backend: their state, why they cannot start, logs, exec, and waiting for
them to be gone at teardown."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import yaml

from ...errors import DeployError, NodeNotReady
from ...topology.model import Topology
from ..base import LABEL_NODE, LABEL_RUN_ID, ExecResult, ReplicaStatus
from .connection import REQUEST_TIMEOUT, api_error, call_raw
from .names import ANNOTATION_RESTARTS, CONTAINER, label_value, object_name

POLL = 0.25
LOG_TAIL = 40
BUILD_HINT = (
    "build it on the cluster node's Docker Engine (`python -m pytest_bannou.backends.docker.images` builds "
    "bannou:latest, redis:7, rabbitmq:3.12-management, mysql:8.0 and openresty/openresty:1.21.4.2-0-alpine; "
    "your own with `docker build -t IMAGE .`); "
    "nothing is pulled (imagePullPolicy: Never)"
)
LAYERLESS_HINT = (
    "a dockershim kubelet (Kubernetes <= 1.23 on Docker) refuses images of size 0, such as the "
    "layer-less FROM scratch images `python -m pytest_bannou.backends.docker.images` builds: give the "
    "image a layer (`FROM IMAGE` + `COPY somefile /`, or "
    "`pytest_bannou.backends.kubernetes.layered_image(IMAGE)` "
    "which builds IMAGE-layered) and run that tag"
)
IMAGE_REASONS = {
    "ErrImageNeverPull",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "ImageInspectError",
}
FAIL_REASONS = IMAGE_REASONS | {
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
}


# --- listing -------------------------------------------------------------------------------------
def live_pods(core: Any, namespace: str, run_id: str, node: str | None = None) -> list[Any]:
    """Live (not terminating) pods of run ``run_id`` in ``namespace``, optionally of one node,
    oldest first."""
    sel = f"{LABEL_RUN_ID}={label_value(run_id)}"
    if node is not None:
        sel += f",{LABEL_NODE}={object_name(node)}"
    pods = core.list_namespaced_pod(namespace, label_selector=sel, _request_timeout=REQUEST_TIMEOUT).items
    pods = [p for p in pods if p.metadata.deletion_timestamp is None]
    pods.sort(key=lambda p: (p.metadata.creation_timestamp, p.metadata.name))
    return pods


def by_node(topology: Topology, pods: Sequence[Any]) -> dict[str, list[Any]]:
    """``pods`` grouped under the topology's node names (every node present, maybe empty)."""
    names = {object_name(n.name): n.name for n in topology.nodes}
    out: dict[str, list[Any]] = {n: [] for n in topology.node_names}
    for p in pods:
        node = names.get((p.metadata.labels or {}).get(LABEL_NODE, ""))
        if node is not None:
            out[node].append(p)
    return out


# --- logs and exec -------------------------------------------------------------------------------
def read_logs(core: Any, namespace: str, pods: Sequence[Any], tail: int | None = None) -> str:
    """Every container of ``pods``, merged by timestamp; a container that crashed and waits to
    restart shows its previous run."""
    lines: list[tuple[str, str]] = []
    for pod in pods:
        statuses = {cs.name: cs for cs in pod.status.container_statuses or []}
        for container in pod.spec.containers:
            cs = statuses.get(container.name)
            previous = bool(
                cs and cs.state and cs.state.waiting and cs.last_state and cs.last_state.terminated
            )
            kwargs: dict[str, Any] = {
                "container": container.name,
                "timestamps": True,
                "previous": previous,
            }
            if tail is not None:
                kwargs["tail_lines"] = max(tail, 0)
            try:
                text = core.read_namespaced_pod_log(
                    pod.metadata.name, namespace, _request_timeout=REQUEST_TIMEOUT, **kwargs
                )
            except Exception:
                continue
            for line in (text or "").splitlines():
                ts, _, rest = line.partition(" ")
                lines.append((_sortable(ts), rest))
    lines.sort(key=lambda t: t[0])
    out = [rest for _, rest in lines]
    if tail is not None:
        out = out[-tail:] if tail > 0 else []
    return "\n".join(out) + ("\n" if out else "")


def exec_in_pod(
    core: Any,
    stream_lock: threading.Lock,
    pod: str,
    namespace: str,
    argv: Sequence[str],
    timeout: float,
) -> ExecResult:
    """Run ``argv`` in the pod's container over the exec websocket (``core`` must be a client of
    its own: the stream helpers patch their ApiClient, hence ``stream_lock``)."""
    from kubernetes.stream import stream

    try:
        with stream_lock:
            ws = stream(
                core.connect_get_namespaced_pod_exec,
                pod,
                namespace,
                command=list(argv),
                container=CONTAINER,
                stdin=False,
                stdout=True,
                stderr=True,
                tty=False,
                _preload_content=False,
                _request_timeout=max(1.0, timeout),
            )
    except Exception as exc:
        return ExecResult(126, f"{' '.join(argv)}: exec in pod {pod} failed: {api_error(exc)}")
    try:
        ws.run_forever(timeout=max(0.01, timeout))
        status = ws.read_channel(3)  # before read_all(), which empties every channel
        output = ws.read_all()
        if ws.is_open():
            return ExecResult(124, output + f"{' '.join(argv)}: timed out after {timeout:.1f}s")
        return _exec_result(status, output)
    finally:
        with contextlib.suppress(Exception):
            ws.close()


# --- failures that waiting does not cure ---------------------------------------------------------
def raise_if_hopeless(
    preset: str, node: str, pod: Any, crash: bool, logs: Callable[[str], str], backend: str
) -> None:
    """``NodeNotReady`` when the pod cannot get its image or be scheduled, and with ``crash`` also
    when its container crash-loops or terminated (with ``logs(node)``)."""
    for cs in pod.status.container_statuses or []:
        waiting = cs.state.waiting if cs.state else None
        terminated = cs.state.terminated if cs.state else None
        if waiting and waiting.reason in IMAGE_REASONS:
            raise NodeNotReady(
                preset,
                node,
                f"pod {pod.metadata.name}: {waiting.reason}: image {cs.image!r} "
                + (
                    f"cannot be used ({waiting.message}); {LAYERLESS_HINT}"
                    if waiting.reason == "ImageInspectError"
                    else f"is not on the cluster node ({waiting.message or 'no message'}); {BUILD_HINT}"
                ),
                "",
                backend,
            )
        if not crash:
            continue
        if waiting and waiting.reason in FAIL_REASONS:
            last = cs.last_state.terminated if cs.last_state else None
            code = f", last exit code {last.exit_code} ({last.reason})" if last else ""
            raise NodeNotReady(
                preset,
                node,
                f"pod {pod.metadata.name}: {waiting.reason}{code}, {cs.restart_count} restarts"
                + (
                    f": {waiting.message}" if waiting.message and waiting.reason != "CrashLoopBackOff" else ""
                ),
                logs(node),
                backend,
            )
        if terminated:
            raise NodeNotReady(
                preset,
                node,
                f"pod {pod.metadata.name}: container terminated ({terminated.reason}, "
                f"exit code {terminated.exit_code})",
                logs(node),
                backend,
            )
    for cond in pod.status.conditions or []:
        if cond.type == "PodScheduled" and cond.status == "False" and cond.reason == "Unschedulable":
            raise NodeNotReady(
                preset,
                node,
                f"pod {pod.metadata.name} cannot be scheduled: {cond.message} "
                "(check the node's resources requests)",
                "",
                backend,
            )


def raise_if_replica_failure(preset: str, node: str, dep: Any, backend: str) -> None:
    """``NodeNotReady`` when the Deployment says its pods cannot be created (quota, admission)."""
    for cond in (dep.status.conditions if dep.status else None) or []:
        if cond.type == "ReplicaFailure" and cond.status == "True":
            raise NodeNotReady(
                preset,
                node,
                f"pods cannot be created: {cond.reason}: {cond.message}",
                "",
                backend,
            )


# --- namespaces at teardown ----------------------------------------------------------------------
def delete_namespace(core: Any, name: str) -> None:
    from kubernetes.client.exceptions import ApiException

    try:
        call_raw(core.delete_namespace, name, propagation_policy="Background")
    except ApiException as exc:
        if exc.status not in (404, 409):  # 409: already terminating
            raise DeployError(f"kubernetes: deleting namespace {name} failed: {api_error(exc)}") from None
    # the namespace controller deletes pods only after a requeue: delete them now, without waiting
    with contextlib.suppress(Exception):
        call_raw(core.delete_collection_namespaced_pod, name)


def _namespace_state(core: Any, name: str) -> str | None:
    """``namespace NAME (PHASE: true conditions)``, or None when it is gone."""
    from kubernetes.client.exceptions import ApiException

    try:
        ns = core.read_namespace(name, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as exc:
        if exc.status == 404:
            return None
        return f"namespace {name} (cannot read: {api_error(exc)})"
    conds = "; ".join(f"{c.type}: {c.message}" for c in (ns.status.conditions or []) if c.status == "True")
    return f"namespace {name} ({ns.status.phase}{': ' + conds if conds else ''})"


def _reap_stopped(core: Any, namespace: str, pods: Sequence[Any]) -> None:
    """Remove, without grace, the objects of terminating pods in which nothing runs any more
    (containers exited or never created). The kubelet keeps such a pod object 5-50 s longer
    for its own bookkeeping (longest for image errors); nothing of the environment runs by then,
    and the kubelet removes the sandbox by itself."""
    for pod in pods:
        if pod.metadata.deletion_timestamp is None or pod.metadata.finalizers:
            continue
        if any(cs.state and cs.state.running for cs in pod.status.container_statuses or []):
            continue
        with contextlib.suppress(Exception):
            call_raw(core.delete_namespaced_pod, pod.metadata.name, namespace, grace_period_seconds=0)


def wait_gone(core: Any, name: str, deadline: float, *, namespace_too: bool, host: str) -> None:
    """Until no pod is left in namespace ``name`` (and, with ``namespace_too``, the namespace
    itself is gone); ``DeployError`` at the deadline naming what is left and how to remove it."""
    from kubernetes.client.exceptions import ApiException

    start = time.monotonic()
    while True:
        try:
            pods = core.list_namespaced_pod(name, _request_timeout=REQUEST_TIMEOUT).items
            _reap_stopped(core, name, pods)
            left = [
                f"pod {p.metadata.name}"
                + (f" (finalizers {p.metadata.finalizers})" if p.metadata.finalizers else "")
                for p in pods
            ]
        except ApiException as exc:
            left = [f"(cannot list pods: {api_error(exc)})"]
        ns_state = _namespace_state(core, name) if namespace_too and not left else None
        if not left and ns_state is None:
            return
        now = time.monotonic()
        if now >= deadline:
            ns_state = ns_state or _namespace_state(core, name) or f"namespace {name} (gone)"
            where = f" on {host}" if host else ""
            raise DeployError(
                f"kubernetes: {ns_state}{where} is still terminating after {now - start:.1f}s "
                f"(teardown deadline); left: {', '.join(left[:10]) or 'no pods'}; inspect it with "
                f"`kubectl get all,events -n {name}`, remove stuck finalizers, or raise "
                "kubernetes_teardown_timeout"
            )
        time.sleep(min(POLL, max(0.0, deadline - now)))


# --- pod state -----------------------------------------------------------------------------------
def _sortable(ts: str) -> str:
    """RFC 3339 timestamps with the fraction padded to 9 digits, so that they sort as text."""
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)$", ts)
    if not m:
        return ts
    return f"{m.group(1)}.{(m.group(2) or '').ljust(9, '0')}{m.group(3)}"


def not_started(pod: Any) -> str:
    """Why a pod's containers have not been created yet, or '' when they have."""
    statuses = pod.status.container_statuses or []
    if not statuses:
        return f"pod {pod.metadata.name} {pod.status.phase or 'Pending'}"
    for cs in statuses:
        waiting = cs.state.waiting if cs.state else None
        if (
            waiting
            and waiting.reason != "CrashLoopBackOff"
            and not (cs.last_state and cs.last_state.terminated)
        ):
            return f"pod {pod.metadata.name} {waiting.reason or 'waiting'}"
    return ""


def rollout_state(dep: Any) -> str:
    """'' when rolled out, else what is missing."""
    want = dep.spec.replicas if dep.spec.replicas is not None else 1
    st = dep.status
    observed = st.observed_generation or 0
    if observed < (dep.metadata.generation or 0):
        return f"Deployment generation {dep.metadata.generation} not observed yet (observed {observed})"
    updated, available, total = st.updated_replicas or 0, st.available_replicas or 0, st.replicas or 0
    if updated == want and available == want and total == want:
        return ""
    return f"{updated}/{want} updated, {available}/{want} available, {total} pods in all"


def pod_summary(pod: Any) -> str:
    parts = [pod.status.phase or "?"]
    for cs in pod.status.container_statuses or []:
        if cs.state and cs.state.waiting:
            parts.append(f"waiting {cs.state.waiting.reason}")
        elif cs.state and cs.state.terminated:
            parts.append(f"terminated {cs.state.terminated.reason} ({cs.state.terminated.exit_code})")
        elif cs.state and cs.state.running:
            parts.append("running" + ("" if cs.ready else ", not ready"))
        if cs.restart_count:
            parts.append(f"{cs.restart_count} restarts")
    return f"{pod.metadata.name} {', '.join(parts)}"


def pod_status(node: str, replica: int, pod: Any) -> ReplicaStatus:
    """A replica's state: running; starting (pending, creating, image problems); exited (its
    container terminated or crash-loops, with the last exit code)."""
    restarts = int((pod.metadata.annotations or {}).get(ANNOTATION_RESTARTS, "0") or 0)
    state, exit_code = "starting", None
    phase = pod.status.phase or "Pending"
    statuses = pod.status.container_statuses or []
    for cs in statuses:
        restarts += cs.restart_count or 0
        s = cs.state
        if s and s.terminated:
            state, exit_code = "exited", s.terminated.exit_code
        elif s and s.waiting and cs.last_state and cs.last_state.terminated:
            state, exit_code = "exited", cs.last_state.terminated.exit_code
        elif s and s.running and state != "exited":
            state = "running"
    if phase in ("Succeeded", "Failed") and state != "exited":
        state = "exited"
    elif phase == "Unknown":
        state = "unknown"
    return ReplicaStatus(
        node=node,
        replica=replica,
        state=state,  # type: ignore[arg-type]
        id=pod.metadata.name,
        exit_code=exit_code,
        restarts=restarts,
        detail=pod_summary(pod),
    )


def _exec_result(error_channel: str, output: str) -> ExecResult:
    """Exit code from the exec error channel (a metav1.Status: Success, or NonZeroExitCode with the
    code in its causes; anything else means the command could not run)."""
    try:
        status = yaml.safe_load(error_channel) or {}
    except yaml.YAMLError:
        status = {}
    if not status or status.get("status") == "Success":
        return ExecResult(0, output)
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            with contextlib.suppress(TypeError, ValueError):
                return ExecResult(int(cause.get("message")), output)
    return ExecResult(126, output + str(status.get("message", "exec failed")))
