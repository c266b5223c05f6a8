"""Helpers the backend test modules share (tests/backends, tests/docker, tests/portainer)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from pytest_bannou.backends.base import Backend
from pytest_bannou.health import wait as health
from pytest_bannou.topology.model import HealthCheck, Node, Topology

FAST_HTTP = HealthCheck(kind="http", target="/health", interval=0.2, retries=0)


def node(name: str, **kw) -> Node:
    """A node whose app id is its name, probed on ``/health`` every 0.2s unless ``kw`` says."""
    kw.setdefault("healthcheck", FAST_HTTP)
    return Node(name=name, app_id=kw.pop("app_id", name), **kw)


def topology_maker(preset: str, preset_hash: str) -> Callable[..., Topology]:
    """``topo(*nodes, preset=preset)``: a test module's topology factory."""

    def topo(*nodes: Node, preset: str = preset) -> Topology:
        return Topology(preset=preset, nodes=tuple(nodes), preset_hash=preset_hash)

    return topo


def deploy_ready(backend: Backend, topology: Topology, timeout: float = 60.0) -> dict[str, float]:
    """Deploy and wait until every node is ready; seconds-to-ready per node."""
    deadline = time.monotonic() + timeout
    backend.deploy(topology, deadline)
    return health.wait_ready(backend, topology, deadline)


def leak_checked_docker_client(run_ids: set[str], what: str) -> Iterator:
    """Body of a session ``docker_client`` fixture: a client (skip when no engine), then, after
    the session, removal of whatever a run id in ``run_ids`` left, and a failure naming it."""
    import pytest

    from pytest_bannou.backends.docker import engine as _docker
    from pytest_bannou.errors import BackendUnavailable

    try:
        cli = _docker.client()
    except BackendUnavailable as exc:
        pytest.skip(exc.message)
    yield cli
    leftovers = {rid: _docker.labelled_leftovers(cli, rid) for rid in sorted(run_ids)}
    leftovers = {rid: found for rid, found in leftovers.items() if found}
    for rid in leftovers:
        _docker.clean_by_label(cli, rid)
    cli.close()
    assert not leftovers, f"{what} leaked labelled resources: {leftovers}"
