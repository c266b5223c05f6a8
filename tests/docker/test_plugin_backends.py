"""``--bannou-backend=auto`` chooses per preset (issue 14 point 4): a preset that requires
``docker-compose`` runs on Compose while one without requiredBackends runs on local, in one
session with one manager per backend, and nothing of the run is left behind."""

from __future__ import annotations

import re

import pytest

from pytest_bannou.backends.docker import engine as _docker
from pytest_bannou.backends.docker.compose import ComposeBackend
from pytest_bannou.environment.runs import run_directory
from tests.support.procs import carrying

COMPOSE = ComposeBackend.available()
pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(not COMPOSE, reason=f"needs Docker Compose v2: {COMPOSE.reason}"),
    pytest.mark.usefixtures("local_images"),
]

ON_COMPOSE = """
    name: on-compose
    description: needs containers
    requiredBackends: [docker-compose]
    topology:
      nodes:
        - name: main
          appId: bannou
"""

SUITE = """
import pytest

@pytest.mark.preset("alpha")
def test_local(bannou_env, bannou_http):
    assert bannou_env.backend == "local"
    assert bannou_http.get("/health").status_code == 200

@pytest.mark.preset("on-compose")
def test_compose(bannou_env, bannou_http):
    assert bannou_env.backend == "compose"
    assert bannou_http.get("/health").status_code == 200

@pytest.mark.preset("alpha")
def test_local_again(bannou_env):
    assert bannou_env.backend == "local"
"""


def _row(result, key: str) -> list[str]:
    line = next(line for line in result.outlines if line.startswith(f"{key} "))
    return re.split(r"\s{2,}", line)


def test_auto_runs_each_preset_on_its_backend_in_one_session(bannou_pytester, docker_client):
    bannou_pytester.preset("on-compose", ON_COMPOSE)
    bannou_pytester.pytester.makepyfile(test_suite=SUITE)
    plan = bannou_pytester.run_subprocess("--bannou-backend=auto", "--bannou-plan").stdout.str()
    assert "1. alpha on local (1 node, 2 tests): start main" in plan, plan
    assert "teardown before the switch to compose: stop main" in plan, plan
    assert "2. on-compose on compose (1 node, 1 test): start main" in plan, plan

    result = bannou_pytester.run_subprocess("--bannou-backend=auto", "-v", timeout=300)
    out = result.stdout.str()
    run_id = re.search(r"run id (bannou-[0-9a-f]+)", out).group(1)
    try:
        assert result.ret == 0, out
        result.assert_outcomes(passed=3)
        progress = [line for line in result.outlines if line.startswith("bannou: ")]
        deploying = [line for line in progress if line.startswith("bannou: deploying ")]
        assert [line.split(":")[1].strip() for line in deploying] == [
            "deploying alpha on local",
            "deploying on-compose on compose",
        ], progress
        # one environment up at a time: local's goes before compose's is deployed
        teardown = next(i for i, line in enumerate(progress) if line.startswith("bannou: teardown alpha"))
        assert teardown < progress.index(deploying[1]), progress
        assert _row(result, "alpha")[1:2] == ["local"] and _row(result, "alpha")[4] == "2"
        assert _row(result, "on-compose")[1:2] == ["compose"] and _row(result, "on-compose")[4] == "1"
    finally:
        left = _docker.labelled_leftovers(docker_client, run_id)
        if left:
            _docker.clean_by_label(docker_client, run_id)
    assert left == []
    assert carrying(run_id) == []
    assert not run_directory(run_id).exists()
