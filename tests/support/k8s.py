"""Helpers shared by the Kubernetes tests."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from pytest_bannou.backends.base import BackendOptions
from pytest_bannou.topology.model import HealthCheck, Node, Topology

CLUSTER = Path(__file__).resolve().parents[2].parent / "shared" / "k8s" / "cluster"
DEFAULT_KUBECONFIG = "/run/bannou-k8s/kubeconfig"
START_HINT = (
    'needs a reachable Kubernetes cluster: run `eval "$(../shared/k8s/cluster up)"` '
    "(from the repository root) before pytest, or set KUBECONFIG"
)
FAST_HTTP = HealthCheck(kind="http", target="/health", interval=0.2, retries=0)
# the locally built image, unchanged: it carries one small layer, which the cluster's dockershim
# kubelet needs (it refuses size-0 images; see kubernetes.LAYERLESS_HINT)
NODE_IMAGE = "bannou:latest"
RUN_IDS: set[str] = set()


def new_run_id(prefix: str = "k8t") -> str:
    rid = f"{prefix}-{uuid.uuid4().hex[:10]}"
    RUN_IDS.add(rid)
    return rid


def kubeconfig_path() -> str | None:
    path = os.environ.get("KUBECONFIG") or (
        DEFAULT_KUBECONFIG if os.path.isfile(DEFAULT_KUBECONFIG) else None
    )
    return path


def options(
    workdir: Path, kubeconfig: str, run_id: str | None = None, ready_timeout: float = 60, **extra
) -> BackendOptions:
    rid = run_id or new_run_id()
    return BackendOptions(
        run_id=rid,
        workdir=workdir / rid,
        ready_timeout=ready_timeout,
        extra={"kubeconfig": kubeconfig, **{k: str(v) for k, v in extra.items()}},
    )


def node(name: str, **kw) -> Node:
    kw.setdefault("healthcheck", FAST_HTTP)
    kw.setdefault("image", NODE_IMAGE)
    return Node(name=name, app_id=kw.pop("app_id", name), **kw)


def topo(*nodes: Node, preset: str = "k8s-test") -> Topology:
    return Topology(preset=preset, nodes=tuple(nodes), preset_hash="h123")


def deadline(seconds: float) -> float:
    return time.monotonic() + seconds
