"""Load + resolve 1,000 generated presets through a PresetLibrary and report the wall time.

    .venv/bin/python bench/presets.py [--count 1000] [--rounds 3]

The generated presets look like real ones: 1-4 bannou nodes with services and environments,
infrastructure with ``${VAR:-default}`` interpolation, a tester, and every tenth preset extends
another. Each round uses a fresh library (nothing cached) over the same directory.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pytest_bannou.preset import PresetLibrary

SERVICES = [
    "account",
    "auth",
    "behavior",
    "actor",
    "connect",
    "game-session",
    "permission",
    "website",
    "testing",
]


def preset_text(i: int) -> str:
    nodes = []
    for n in range(1 + i % 4):
        services = SERVICES[n * 2 : n * 2 + 2]
        nodes.append(
            f"""    - name: node-{n}
      services: [{", ".join(services)}]
      replicas: {1 + (i + n) % 2}
      environment:
        REGION: ${{BENCH_REGION:-r{i % 7}}}
        NODE_INDEX: {n}
        VERBOSE: true
      healthcheck: {{http: /health, interval: 500ms, timeout: 2s}}
"""
        )
    extends = f"extends: bench-{i - 1:04d}\n" if i % 10 == 9 else ""
    return f"""# generated preset {i}
name: bench-{i:04d}
description: generated preset number {i}
category: testing
{extends}topology:
  nodes:
{"".join(nodes)}  infrastructure:
    redis:
      enabled: ${{BENCH_INFRA:-true}}
      version: "7"
    rabbitmq:
      enabled: ${{BENCH_INFRA:-false}}
environment:
  BANNOU_APP_LOGGING_LEVEL: Debug
  SEED: "{i}"
requiredBackends: [docker-compose, local]
testers:
  - name: http-tester
    command: [python, -m, pytest_bannou.reference.tester, --format, http-tester]
    format: http-tester
    timeout: 5m
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bannou-bench-presets-") as tmp:
        d = Path(tmp)
        for i in range(args.count):
            (d / f"bench-{i:04d}.yaml").write_text(preset_text(i), encoding="utf-8")
        loads, resolves, totals, cpus = [], [], [], []
        nodes = 0
        for _ in range(args.rounds):
            lib = PresetLibrary([d], environ={}, include_builtin=False)
            c0 = time.process_time()
            t0 = time.perf_counter()
            names = lib.names()
            presets = [lib.load(name) for name in names]
            t1 = time.perf_counter()
            topologies = [lib.resolve(name) for name in names]
            t2 = time.perf_counter()
            cpus.append(time.process_time() - c0)
            loads.append(t1 - t0)
            resolves.append(t2 - t1)
            totals.append(t2 - t0)
            nodes = sum(len(t.nodes) for t in topologies)
            assert len(presets) == args.count
    load, res, total = (statistics.median(x) for x in (loads, resolves, totals))
    print(
        f"python {sys.version.split()[0]}, {args.count} presets ({nodes} resolved nodes), "
        f"median of {args.rounds} rounds"
    )
    per = 1000 / args.count
    cpu = statistics.median(cpus)
    print(f"load (parse, interpolate, validate, extends): {load:.3f} s  ({load * per:.2f} ms/preset)")
    print(f"resolve:                                      {res:.3f} s  ({res * per:.2f} ms/preset)")
    print(f"load + resolve:                               {total:.3f} s  ({total * per:.2f} ms/preset)")
    print(f"CPU time of load + resolve (this process):    {cpu:.3f} s  ({cpu * per:.2f} ms/preset)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
