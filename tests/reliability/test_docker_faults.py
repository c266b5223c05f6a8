"""Teardown guarantees on the compose backend, verified by labels: SIGINT mid-test leaves no
labelled container, network or volume; after SIGKILL the next session's sweep removes them."""

from __future__ import annotations

import os
import signal

import pytest

from pytest_bannou.backends import _docker

from .conftest import finish, wait_for

ENGINE = _docker.engine_availability()
pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(not ENGINE, reason=f"needs a Docker Engine: {ENGINE.reason}"),
]

HANGS = """
import time, pytest

@pytest.mark.preset("red")
def test_hangs(bannou_env):
    time.sleep(120)
"""


@pytest.fixture
def docker_project(project):
    from pytest_bannou.backends import registry
    from pytest_bannou.backends.images import ensure_images

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


def _hanging_session(project, cli) -> tuple:
    project.write("test_hangs.py", HANGS)
    project.reset_deploys()
    proc = project.start("-q", "-p", "no:cacheprovider", "--bannou-backend=compose", "test_hangs.py")
    records = wait_for(lambda: project.deploys() or proc.poll() is not None, timeout=120)
    assert proc.poll() is None, project.output(proc) if finish(proc) is None else ""
    run_id = records[0]["run_id"]
    assert _docker.labelled_leftovers(cli, run_id)  # deployed: containers carry the run id
    return proc, run_id


def test_sigint_mid_test_leaves_no_labelled_resource(docker_project):
    project, cli = docker_project
    proc, run_id = _hanging_session(project, cli)
    os.killpg(proc.pid, signal.SIGINT)
    finish(proc, timeout=120)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, project.output(proc)
    assert _docker.labelled_leftovers(cli, run_id) == []


def test_sigkill_leftovers_are_swept_by_the_next_session(docker_project):
    project, cli = docker_project
    proc, run_id = _hanging_session(project, cli)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    left = _docker.labelled_leftovers(cli, run_id)
    assert left  # SIGKILL: nothing tore down
    project.write(
        "test_next.py",
        """
        import pytest

        @pytest.mark.preset("green")
        def test_next(bannou_env):
            pass
        """,
    )
    code, out = project.run("-q", "-p", "no:cacheprovider", "--bannou-backend=compose", "test_next.py")
    assert code == 0, out
    assert f"run {run_id} (compose): container" in out, out
    assert _docker.labelled_leftovers(cli, run_id) == []
    print(f"compose SIGKILL: {len(left)} labelled resources left, all swept by the next session")
