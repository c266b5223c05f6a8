"""Teardown guarantees on the compose backend, verified by labels: SIGINT at random moments
(deploy, tests, transition, teardown) leaves no labelled container, network or volume; after
SIGKILL the next session's sweep removes them."""

from __future__ import annotations

import random
import signal

import pytest

from pytest_bannou.backends.docker import engine as _docker

from . import faults

ENGINE = _docker.engine_availability()
pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(not ENGINE, reason=f"needs a Docker Engine: {ENGINE.reason}"),
]

COMPOSE_SIGINT_RUNS = 6  # + 14 on the local backend (test_teardown.py): the 20
COMPOSE_SIGKILL_RUNS = 3  # + 7 on the local backend: the 10


@pytest.fixture
def docker_project(project):
    from pytest_bannou.backends import registry
    from pytest_bannou.backends.docker.images import ensure_images

    avail = registry.availability("compose")
    if not avail:
        pytest.skip(f"needs Docker Compose: {avail.reason}")
    cli = _docker.client()
    ensure_images(cli, include_optional=False)
    yield project, cli
    for rid in project.run_ids:  # by run id only
        if _docker.labelled_leftovers(cli, rid):
            _docker.clean_by_label(cli, rid)
    cli.close()


def _leaks(project, cli):
    """What of a run is left: resources labelled with its run id, and local processes carrying it."""
    return lambda run_id: _docker.labelled_leftovers(cli, run_id) + faults.local_leaks(project, run_id)


def test_sigint_at_random_moments_leaves_no_labelled_resource(docker_project):
    """Bounded loop: Ctrl-C at a random moment of deploy, tests, transition or teardown."""
    project, cli = docker_project
    leaks = _leaks(project, cli)
    outcome = faults.interrupt_loop(
        project, signal.SIGINT, COMPOSE_SIGINT_RUNS, "compose", random.Random(17), leaks
    )
    assert outcome.runs == outcome.interrupted == COMPOSE_SIGINT_RUNS
    assert set(outcome.hit or {}) >= set(faults.PHASES), outcome.hit  # every phase was hit
    assert all(leaks(rid) == [] for rid in project.run_ids)


def test_sigkill_leftovers_are_swept_by_the_next_session(docker_project):
    """Bounded loop: each session is SIGKILLed during its tests; the next one sweeps it."""
    project, cli = docker_project

    def evidence(run_id: str) -> list[str]:
        left = _docker.labelled_leftovers(cli, run_id)
        assert any(r.startswith("container ") for r in left), left  # SIGKILL: nothing tore down
        return left

    leaks = _leaks(project, cli)
    swept = faults.sigkill_chain(project, COMPOSE_SIGKILL_RUNS, "compose", random.Random(19), evidence, leaks)
    assert swept >= COMPOSE_SIGKILL_RUNS
    assert all(leaks(rid) == [] for rid in project.run_ids)
