"""Benchmark: the local backend deploying 8 nodes that each take 1 s to become ready.

Measures deploy-to-ready (deploy + health.wait_ready) and teardown, in parallel (what the
backend does) and sequentially (one node deployed and waited for after the other), and prints
them side by side. Goals (issue 3): deploy-to-ready <= 1.3 s, teardown <= 0.5 s.

    .venv/bin/python bench/local_deploy.py [--nodes 8] [--delay 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from pytest_bannou.backends.base import BackendOptions
from pytest_bannou.backends.local.backend import LocalBackend
from pytest_bannou.health import wait as health
from pytest_bannou.topology.model import HealthCheck, Node, Topology

GOAL_READY = 1.3
GOAL_TEARDOWN = 0.5


def topology(nodes: int, delay: float) -> Topology:
    hc = HealthCheck(kind="http", target="/health", interval=1.0, retries=0)
    env = {"BANNOU_REFERENCE_STARTUP_DELAY": str(delay)}
    return Topology(
        preset="bench-local-deploy",
        nodes=tuple(Node(f"node{i}", f"app{i}", environment=env, healthcheck=hc) for i in range(nodes)),
    )


def parallel(topo: Topology, workdir: Path) -> tuple[float, float]:
    backend = LocalBackend(BackendOptions(run_id=f"bench-par-{time.time_ns()}", workdir=workdir))
    try:
        start = time.monotonic()
        deadline = start + 60
        backend.deploy(topo, deadline)
        health.wait_ready(backend, topo, deadline)
        ready = time.monotonic() - start
    finally:
        start = time.monotonic()
        backend.teardown()
        down = time.monotonic() - start
    return ready, down


def sequential(topo: Topology, workdir: Path) -> tuple[float, float]:
    """One backend per node, each deployed and waited for before the next; torn down in turn."""
    backends = []
    try:
        start = time.monotonic()
        for node in topo.nodes:
            single = topo.with_nodes([node])
            b = LocalBackend(
                BackendOptions(run_id=f"bench-seq-{time.time_ns()}", workdir=workdir / node.name)
            )
            backends.append(b)
            deadline = time.monotonic() + 60
            b.deploy(single, deadline)
            health.wait_ready(b, single, deadline)
        ready = time.monotonic() - start
    finally:
        start = time.monotonic()
        for b in backends:
            b.teardown()
        down = time.monotonic() - start
    return ready, down


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    topo = topology(args.nodes, args.delay)
    par, seq = [], []
    with tempfile.TemporaryDirectory(prefix="bench-local-") as tmp:
        for i in range(args.rounds):
            par.append(parallel(topo, Path(tmp) / f"par{i}"))
            seq.append(sequential(topo, Path(tmp) / f"seq{i}"))
    med = statistics.median
    p_ready, p_down = med(r for r, _ in par), med(d for _, d in par)
    s_ready, s_down = med(r for r, _ in seq), med(d for _, d in seq)
    print(f"{args.nodes} nodes, startup delay {args.delay:g}s each, median of {args.rounds} rounds")
    print(f"{'':18}{'parallel':>10}{'sequential':>12}{'goal':>8}")
    print(f"{'deploy-to-ready':18}{p_ready:>9.2f}s{s_ready:>11.2f}s{'<= ' + str(GOAL_READY):>8}")
    print(f"{'teardown':18}{p_down:>9.2f}s{s_down:>11.2f}s{'<= ' + str(GOAL_TEARDOWN):>8}")
    ok = p_ready <= GOAL_READY and p_down <= GOAL_TEARDOWN
    print("goals met" if ok else "goals NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
