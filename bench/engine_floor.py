"""What the Docker Engine itself needs to start the containers of bench/docker_deploy.py.

``docker_deploy.py`` measures whole deployments; this script measures the part no backend can
remove: the Engine API creating and starting the same containers, with no Compose and no
readiness wait. A deployment is ready no earlier than "last container started" plus the node's
own startup delay (1.0 s in docker_deploy), so these figures are the floor of its goals.

Variants (each: ``bannou:latest`` with the host mounts, ``init``, a published port on
127.0.0.1, on a fresh user-defined bridge network, like the Compose backend renders them):

- 4 containers created and started in parallel (4 threads), 2 threads, and one after another
- the same with one setting changed (no init, no published port, no tmpfs), to show which
  settings cost anything
- ``network_mode: none``: no network namespace setup, to show what bridge networking costs
- 1 container (the one-node transition's start)

    python bench/engine_floor.py [--rounds 3]

Every container and network carries the label ``io.bannou.pytest.bench=<run>`` and is removed
by id.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_bannou.backends.docker import engine as _docker
from pytest_bannou.backends.docker import images

IMAGE = "bannou:latest"
LABEL = "io.bannou.pytest.bench"


class Floor:
    def __init__(self, api: Any, binds: list[str], run: str) -> None:
        self.api = api
        self.binds = binds
        self.run = run

    def start(
        self,
        count: int = 4,
        workers: int = 4,
        init: bool = True,
        port: bool = True,
        tmpfs: bool = True,
        network: bool = True,
    ) -> float:
        """Seconds from the network's creation until every container's ``start`` returned."""
        api, labels = self.api, {LABEL: self.run}
        name = f"bench-floor-{uuid.uuid4().hex[:8]}"
        ids: list[str] = []
        t0 = time.monotonic()
        net_id = api.create_network(name, labels=labels)["Id"] if network else None
        try:

            def one(i: int) -> None:
                host_config = api.create_host_config(
                    binds=self.binds,
                    init=init,
                    port_bindings={80: ("127.0.0.1", None)} if port else None,
                    network_mode=name if network else "none",
                    tmpfs={"/tmp": ""} if tmpfs else None,
                )
                c = api.create_container(
                    IMAGE,
                    environment={"BANNOU_REFERENCE_STARTUP_DELAY": "1", "BANNOU_APP_ID": f"node{i}"},
                    host_config=host_config,
                    labels=labels,
                    ports=[80] if port else None,
                )
                ids.append(c["Id"])
                api.start(c["Id"])

            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(one, range(count)))
            return time.monotonic() - t0
        finally:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda cid: api.remove_container(cid, force=True), ids))
            if net_id is not None:
                api.remove_network(net_id)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    cli = _docker.client()
    images.ensure_images(cli)
    info = _docker.image_info(cli, IMAGE)
    assert info is not None
    floor = Floor(cli.api, _docker.host_mounts(info), uuid.uuid4().hex[:12])
    variants: dict[str, Callable[[], float]] = {
        "4 containers, 4 threads (as the backends render them)": lambda: floor.start(),
        "4 containers, 2 threads": lambda: floor.start(workers=2),
        "4 containers, one after another": lambda: floor.start(workers=1),
        "4 containers, no init": lambda: floor.start(init=False),
        "4 containers, no published port": lambda: floor.start(port=False),
        "4 containers, no tmpfs": lambda: floor.start(tmpfs=False),
        "4 containers, network_mode none": lambda: floor.start(network=False, port=False),
        "1 container": lambda: floor.start(count=1, workers=1),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.rounds):
        for key, fn in variants.items():
            times[key].append(fn())
    cli.close()
    print(f"Engine API, create + start, median of {args.rounds}; load {os.getloadavg()[0]:.1f}")
    for key, ts in times.items():
        spread = ", ".join(f"{t:.2f}" for t in ts)
        print(f"{key:56} {statistics.median(ts):5.2f} s   ({spread})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
