"""bannou's own set-ups (issue 15 point 1): with ``BANNOU_INFRA=true`` the built-in presets
``test-edge``, ``test-http`` and ``test-infrastructure`` deploy every infrastructure node they
name (MySQL, Redis, RabbitMQ and, for the edge, the ingress) and pass their testers, on the local
backend (host programs) and on Compose and Swarm (the stand-in images). Kubernetes: tests/k8s."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator

import pytest

from pytest_bannou.backends.docker import engine as _docker
from pytest_bannou.backends.ingress import nginx_binary
from pytest_bannou.backends.mysql_server import server_binary
from tests.support.bannou_pytester import BannouPytester

PRESETS = ["test-edge", "test-http", "test-infrastructure"]
#: what each preset deploys with BANNOU_INFRA=true
NODES = {"test-edge": 5, "test-http": 4, "test-infrastructure": 4}
ENGINE = _docker.engine_availability()
HOST_PROGRAMS = {
    "redis-server": shutil.which("redis-server"),
    "rabbitmq-server": shutil.which("rabbitmq-server"),
    "mariadb-server (mysqld)": server_binary(),
    "nginx": nginx_binary(),
}
MISSING = [name for name, path in HOST_PROGRAMS.items() if path is None]


@pytest.fixture(scope="module")
def docker_cli() -> Iterator:
    from pytest_bannou.backends.docker.images import ensure_images

    cli = _docker.client()
    ensure_images(cli)  # the stand-ins of mysql:8.0, redis, rabbitmq and the ingress included
    yield cli
    cli.close()


def run_preset(bannou_pytester: BannouPytester, monkeypatch, preset: str, backend: str) -> dict:
    """An inner session of ``preset`` with its full infrastructure; returns its results.json."""
    monkeypatch.setenv("BANNOU_INFRA", "true")
    report = bannou_pytester.pytester.path / "report"
    result = bannou_pytester.run_subprocess(
        f"--bannou-preset={preset}", f"--bannou-backend={backend}", f"--bannou-report={report}", timeout=600
    )
    assert result.ret == 0, result.stdout.str()
    assert f"deploying {preset} on {backend}: {NODES[preset]} nodes" in result.stdout.str()
    data = json.loads((report / "results.json").read_text())
    cases = [t for t in data["tests"] if t["kind"] == "tester"]
    assert cases and all(t["outcome"] == "passed" for t in cases), cases
    return {"data": data, "stdout": result.stdout.str()}


@pytest.mark.skipif(
    bool(MISSING), reason=f"needs {', '.join(MISSING)} (scripts/setup-engines.sh installs them)"
)
@pytest.mark.parametrize("preset", PRESETS)
def test_full_infrastructure_on_local(bannou_pytester: BannouPytester, monkeypatch, preset: str) -> None:
    run_preset(bannou_pytester, monkeypatch, preset, "local")


@pytest.mark.docker
@pytest.mark.skipif(not ENGINE, reason=f"needs a Docker Engine ({ENGINE.reason}): scripts/setup-engines.sh")
@pytest.mark.parametrize("backend", ["compose", "swarm"])
@pytest.mark.parametrize("preset", PRESETS)
def test_full_infrastructure_on_docker(
    bannou_pytester: BannouPytester, monkeypatch, docker_cli, preset: str, backend: str
) -> None:
    out = run_preset(bannou_pytester, monkeypatch, preset, backend)
    run_id = re.search(r"run id (bannou-[0-9a-f]+)", out["stdout"]).group(1)
    left = _docker.labelled_leftovers(docker_cli, run_id)
    if left:
        _docker.clean_by_label(docker_cli, run_id)
    assert left == []
