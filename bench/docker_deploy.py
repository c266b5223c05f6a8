"""Deploy / transition / teardown of a 4-node topology on Docker, four ways.

Every node is the reference node with ``BANNOU_REFERENCE_STARTUP_DELAY=1`` (its process needs
1.0 s before it listens), image ``bannou:latest`` built by ``pytest_bannou.backends.docker.images``.

  (a) this plugin's Compose backend: ``deploy`` + ``health.wait_ready``; ``apply`` of a one-node
      change; ``teardown``
  (b) plain Compose on an equivalent file: ``up -d --wait`` / ``up -d --wait`` after editing one
      service / ``down -v``
  (c) a script: ``docker run -d`` then HTTP health polling (every 0.1 s), container after
      container; ``docker rm -f`` each
  (d) testcontainers-python with its defaults (``DockerContainer`` + ``HttpWaitStrategy``, one
      container after the other; Ryuk disabled: its image cannot be pulled here)

    python bench/docker_deploy.py [--rounds 3] [--json out.json] [--only a,b,c,d]

Prints the median of each figure over the rounds, and ratios against (b).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_bannou.backends.base import BackendOptions
from pytest_bannou.backends.docker import compose, images
from pytest_bannou.backends.docker import engine as _docker
from pytest_bannou.backends.docker.compose import ComposeBackend
from pytest_bannou.health import wait as health
from pytest_bannou.topology.diff import diff
from pytest_bannou.topology.model import HealthCheck, Node, Topology

NODES = 4
DELAY = "1"
IMAGE = "bannou:latest"


def topology(changed: bool = False) -> Topology:
    nodes = []
    for i in range(NODES):
        env = {"BANNOU_REFERENCE_STARTUP_DELAY": DELAY}
        if changed and i == NODES - 1:
            env["BENCH_GENERATION"] = "2"
        nodes.append(Node(name=f"node{i}", app_id=f"node{i}", environment=env, healthcheck=HealthCheck()))
    return Topology(preset="bench-docker", nodes=tuple(nodes), preset_hash="bench")


def timed(fn: Callable[[], object]) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


# --- (a) ---------------------------------------------------------------------------------------------
def run_plugin(workdir: Path) -> dict[str, float]:
    rid = f"bench-{uuid.uuid4().hex[:8]}"
    backend = ComposeBackend(BackendOptions(run_id=rid, workdir=workdir / rid))
    one, two = topology(), topology(changed=True)

    def deploy() -> None:
        deadline = time.monotonic() + 60
        backend.deploy(one, deadline)
        health.wait_ready(backend, one, deadline)

    def transition() -> None:
        deadline = time.monotonic() + 60
        t = diff(one, two)
        backend.apply(t, deadline)
        health.wait_ready(
            backend, two, deadline, nodes=[c.name for c in t.changes if c.action.value != "keep"]
        )

    try:
        return {"ready": timed(deploy), "transition": timed(transition), "down": timed(backend.teardown)}
    finally:
        backend.teardown()


# --- (b) ---------------------------------------------------------------------------------------------
def run_plain_compose(workdir: Path, cli) -> dict[str, float]:
    rid = f"bench-{uuid.uuid4().hex[:8]}"
    options = BackendOptions(run_id=rid, workdir=workdir)
    infos = _docker.inspect_images(cli, topology())
    project = _docker.sanitize(f"plain-{rid}")
    path = workdir / f"{project}.yaml"
    argv = [*compose.compose_command().argv, "-p", project, "-f", str(path)]

    def write(t: Topology) -> None:
        path.write_text(compose.render_text(compose.render(t, options, project, infos)))

    def up() -> None:
        subprocess.run([*argv, "up", "-d", "--wait"], check=True, capture_output=True, timeout=120)

    write(topology())
    try:
        ready = timed(up)
        write(topology(changed=True))
        transition = timed(up)
        down = timed(
            lambda: subprocess.run([*argv, "down", "-v"], check=True, capture_output=True, timeout=120)
        )
    finally:
        subprocess.run([*argv, "down", "-v"], capture_output=True, timeout=120)
    return {"ready": ready, "transition": transition, "down": down}


# --- (c) ---------------------------------------------------------------------------------------------
def wait_http(url: str, deadline: float, interval: float) -> None:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(url)
        time.sleep(interval)


def run_script(mounts: list[str]) -> dict[str, float]:
    rid = f"bench-{uuid.uuid4().hex[:8]}"
    ids: list[str] = []

    def deploy() -> None:
        for _ in range(NODES):
            argv = ["docker", "run", "-d", "--init", "--label", f"io.bannou.pytest.run-id={rid}"]
            argv += [
                "-p",
                "127.0.0.1::80",
                "--tmpfs",
                "/tmp",
                "-e",
                f"BANNOU_REFERENCE_STARTUP_DELAY={DELAY}",
            ]
            for m in mounts:
                argv += ["-v", m]
            cid = subprocess.run([*argv, IMAGE], check=True, capture_output=True, text=True).stdout.strip()
            ids.append(cid)
            port = subprocess.run(["docker", "port", cid, "80"], capture_output=True, text=True)
            if port.returncode != 0:
                logs = subprocess.run(["docker", "logs", "--tail", "20", cid], capture_output=True, text=True)
                raise RuntimeError(
                    f"(c) container {cid[:12]} has no port 80: {port.stderr}{logs.stdout}{logs.stderr}"
                )
            host_port = port.stdout.split()[0].rsplit(":", 1)[1]
            wait_http(f"http://127.0.0.1:{host_port}/health", time.monotonic() + 60, 0.1)

    def down() -> None:
        for cid in ids:
            subprocess.run(["docker", "rm", "-f", cid], check=True, capture_output=True)

    try:
        return {"ready": timed(deploy), "down": timed(down)}
    finally:
        for cid in ids:
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True)


# --- (d) ---------------------------------------------------------------------------------------------
def run_testcontainers(mounts: list[str]) -> dict[str, float] | str:
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    try:
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.wait_strategies import HttpWaitStrategy
    except ImportError as exc:
        return f"testcontainers not installed ({exc}): pip install testcontainers"
    containers = []

    def deploy() -> None:
        for _ in range(NODES):
            c = (
                DockerContainer(IMAGE)
                .with_exposed_ports(80)
                .with_env("BANNOU_REFERENCE_STARTUP_DELAY", DELAY)
            )
            c = c.with_kwargs(init=True).with_tmpfs_mount("/tmp")
            for m in mounts:
                host, target, mode = m.split(":")
                c = c.with_volume_mapping(host, target, mode)
            c.waiting_for(HttpWaitStrategy(80, "/health"))
            containers.append(c)
            c.start()

    def down() -> None:
        for c in containers:
            c.stop()

    try:
        return {"ready": timed(deploy), "down": timed(down)}
    finally:
        for c in containers:
            with contextlib.suppress(Exception):  # already removed by down()
                c.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="a,b,c,d", help="comma-separated subset of a,b,c,d")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    wanted = set(args.only.split(","))

    cli = _docker.client()
    images.ensure_images(cli)
    info = _docker.image_info(cli, IMAGE)
    assert info is not None
    mounts = _docker.host_mounts(info)
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in "abcd" if k in wanted}
    notes: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-docker-") as tmp:
        work = Path(tmp)
        for r in range(args.rounds):
            for key in runs:
                if key == "a":
                    runs[key].append(run_plugin(work))
                elif key == "b":
                    runs[key].append(run_plain_compose(work, cli))
                elif key == "c":
                    runs[key].append(run_script(mounts))
                else:
                    res = run_testcontainers(mounts)
                    if isinstance(res, str):
                        notes["d"] = res
                    else:
                        runs[key].append(res)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    cli.close()

    names = {
        "a": "(a) pytest-bannou compose backend",
        "b": "(b) docker compose up -d --wait / down -v",
        "c": "(c) docker run + health polling, sequential",
        "d": "(d) testcontainers-python defaults",
    }
    medians = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in runs.items() if v}
    base = medians.get("b", {})
    print(
        f"{NODES} nodes x {DELAY} s startup, median of {args.rounds} round(s); load {os.getloadavg()[0]:.1f}"
    )
    print(f"{'':46} {'ready':>8} {'x(b)':>6} {'1-node transition':>18} {'x(b)':>6} {'down':>7} {'x(b)':>6}")
    for k, m in medians.items():
        cells = []
        for metric, width in (("ready", 8), ("transition", 18), ("down", 7)):
            v = m.get(metric)
            cells.append(f"{v:>{width}.2f}s" if v is not None else f"{'-':>{width + 1}}")
            ratio = v / base[metric] if v is not None and base.get(metric) else None
            cells.append(f"{ratio:>6.2f}" if ratio is not None else f"{'-':>6}")
        print(f"{names[k]:46} {' '.join(cells)}")
    for k, note in notes.items():
        print(f"{names[k]}: {note}")
    if args.json:
        Path(args.json).write_text(json.dumps({"medians": medians, "runs": runs, "notes": notes}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
