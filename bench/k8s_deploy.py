"""Benchmark: the Kubernetes backend deploying the 4-node topology, next to the Compose backend.

Four reference nodes (``bannou:latest``, the same image on both backends), each with
``BANNOU_REFERENCE_STARTUP_DELAY=1`` (1 s from process start until it listens), deployed by
each backend and waited for with ``health.wait_ready`` (probes from this process: through
port-forwards on Kubernetes, published ports on Compose), then torn down. For Kubernetes,
teardown is what the backend waits for by default (the namespace is deleted and its pods are
gone); the time until the namespace object itself disappears is measured too
(``namespace gone``, counted from the start of teardown).

    eval "$(../shared/k8s/cluster up)"
    .venv/bin/python bench/k8s_deploy.py [--rounds 3] [--delay 1] [--no-compose]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from pytest_bannou.backends import kubernetes as k8s
from pytest_bannou.backends.base import Backend, BackendOptions
from pytest_bannou.health import wait as health
from pytest_bannou.topology.model import HealthCheck, Node, Topology


def topology(delay: float, image: str | None = None) -> Topology:
    hc = HealthCheck(kind="http", target="/health", interval=1.0, retries=0)
    env = {"BANNOU_REFERENCE_STARTUP_DELAY": str(delay)}
    nodes = tuple(Node(f"node{i}", f"app{i}", environment=env, healthcheck=hc, image=image) for i in range(4))
    return Topology(preset="bench-4-nodes", nodes=nodes, preset_hash="bench")


def measure(backend: Backend, topo: Topology) -> tuple[float, float, float]:
    """(deploy() returned, ready, teardown) in seconds."""
    try:
        start = time.monotonic()
        deadline = start + 120
        backend.deploy(topo, deadline)
        started = time.monotonic() - start
        health.wait_ready(backend, topo, deadline)
        ready = time.monotonic() - start
    finally:
        start = time.monotonic()
        backend.teardown()
        down = time.monotonic() - start
    return started, ready, down


def namespace_gone(kubeconfig: str, namespace: str, timeout: float = 90) -> float:
    """Seconds from now until the namespace object is gone (after teardown returned)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    conn = k8s.connect(BackendOptions(run_id="x", workdir=Path("."), extra={"kubeconfig": kubeconfig}))
    core = client.CoreV1Api(client.ApiClient(conn.configuration))
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            core.read_namespace(namespace, _request_timeout=10)
        except ApiException as exc:
            if exc.status == 404:
                return time.monotonic() - start
            raise
        time.sleep(0.2)
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--no-compose", action="store_true")
    args = parser.parse_args()
    kubeconfig = os.environ.get("KUBECONFIG", "/run/bannou-k8s/kubeconfig")
    available = k8s.availability(
        BackendOptions(run_id="x", workdir=Path("."), extra={"kubeconfig": kubeconfig})
    )
    if not available:
        print(f"kubernetes: {available.reason}")
        return 1
    from pytest_bannou.backends.docker.images import ensure_images

    ensure_images(include_optional=False)
    # the same image with one layer: this cluster's dockershim kubelet refuses size-0 images
    k8s_topo = topology(args.delay, "bannou:latest")
    topo = topology(args.delay)
    rows: dict[str, list[tuple[float, ...]]] = {"kubernetes": [], "compose": []}
    compose = None
    if not args.no_compose:
        from pytest_bannou.backends.docker.compose import ComposeBackend

        compose = ComposeBackend if ComposeBackend.available() else None
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            opts = BackendOptions(
                run_id=f"bench-k8s-{time.time_ns()}",
                workdir=Path(tmp) / f"k{r}",
                extra={"kubeconfig": kubeconfig},
            )
            backend = k8s.KubernetesBackend(opts)
            started, ready, down = measure(backend, k8s_topo)
            ns = k8s.namespace_name(opts, k8s_topo)
            gone = down + namespace_gone(kubeconfig, ns)
            rows["kubernetes"].append((started, ready, down, gone))
            print(
                f"kubernetes round {r + 1}: deploy() {started:.2f} s, ready {ready:.2f} s, "
                f"teardown {down:.2f} s, namespace gone {gone:.2f} s"
            )
            if compose is not None:
                copts = BackendOptions(run_id=f"bench-cmp-{time.time_ns()}", workdir=Path(tmp) / f"c{r}")
                cstarted, cready, cdown = measure(compose(copts), topo)
                rows["compose"].append((cstarted, cready, cdown))
                print(
                    f"compose    round {r + 1}: deploy() {cstarted:.2f} s, ready {cready:.2f} s, "
                    f"teardown {cdown:.2f} s"
                )
    print(f"\nmedian of {args.rounds} rounds, 4 nodes, startup delay {args.delay} s, {available.reason}")
    print("| backend | deploy() returned | deploy-to-ready | teardown | namespace gone |")
    print("| --- | --- | --- | --- | --- |")
    for name, values in rows.items():
        if not values:
            continue
        cols = [f"{statistics.median(v[i] for v in values):.2f} s" for i in range(len(values[0]))]
        cols += ["-"] * (4 - len(cols))
        print(f"| {name} | {' | '.join(cols)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
