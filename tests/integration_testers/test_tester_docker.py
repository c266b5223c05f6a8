"""Testers on Docker (compose backend): the tester runs as a container on the environment's
network, reaches the nodes by their in-network names, and its cases reach every report."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_bannou.backends.docker import engine as _docker
from tests.support.bannou_pytester import BannouPytester
from tests.support.testers import preset_yaml

ENGINE = _docker.engine_availability()
pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(
        not ENGINE,
        reason=f"needs a Docker Engine ({ENGINE.reason}); install docker.io and start dockerd, "
        "or point DOCKER_HOST at a running engine",
    ),
]


@pytest.fixture(scope="module")
def docker_cli() -> Iterator:
    from pytest_bannou.backends.docker.images import ensure_images

    cli = _docker.client()
    ensure_images(cli, include_optional=False)
    yield cli
    cli.close()


def run_compose(bannou_pytester: BannouPytester, docker_cli, *args: str) -> pytest.RunResult:
    """An inner session on the compose backend; afterwards nothing of its run id may be left."""
    return nothing_left(
        bannou_pytester.run_subprocess("--bannou-backend=compose", *args, timeout=240), docker_cli
    )


def nothing_left(result: pytest.RunResult, docker_cli) -> pytest.RunResult:
    """``result``, once no resource of its run id is left (removed by id, then failed, if one is)."""
    match = re.search(r"run id (bannou-[0-9a-f]+)", result.stdout.str())
    assert match, result.stdout.str()
    left = _docker.labelled_leftovers(docker_cli, match.group(1))
    if left:
        _docker.clean_by_label(docker_cli, match.group(1))
    assert left == []
    return result


def test_test_http_on_compose_with_report(bannou_pytester: BannouPytester, docker_cli) -> None:
    report = bannou_pytester.pytester.path / "report"
    result = run_compose(
        bannou_pytester, docker_cli, "--bannou-preset=test-http", f"--bannou-report={report}", "-v"
    )
    assert result.ret == 0, result.stdout.str()
    data = json.loads((report / "results.json").read_text())
    cases = [t for t in data["tests"] if t["kind"] == "tester"]
    result.assert_outcomes(passed=1 + len(cases))
    assert "tester::http-tester::Health[test-http]" in {t["nodeid"] for t in cases}
    assert all(t["outcome"] == "passed" for t in cases)
    assert data["backend"] == "compose"
    assert [p["backend"] for p in data["presets"]] == ["compose"]


def test_test_edge_on_compose(bannou_pytester: BannouPytester, docker_cli) -> None:
    report = bannou_pytester.pytester.path / "report"
    result = run_compose(
        bannou_pytester, docker_cli, "--bannou-preset=test-edge", f"--bannou-report={report}"
    )
    assert result.ret == 0, result.stdout.str()
    data = json.loads((report / "results.json").read_text())
    assert "tester::edge-tester::Health Check[test-edge]" in {t["nodeid"] for t in data["tests"]}
    # the tester container's WebSocket round trip through CONNECT_ENDPOINT (bannou:80/connect)
    ws = next(
        t for t in data["tests"] if t["nodeid"] == "tester::edge-tester::WebSocket Connect - Echo[test-edge]"
    )
    assert ws["outcome"] == "passed"


def test_tester_container_sees_in_network_endpoints(bannou_pytester: BannouPytester, docker_cli) -> None:
    # the probe prints what it sees and fails, so its output is the failure text
    code = (
        "import json, os, sys; keys = ['BANNOU_HTTP_ENDPOINT', 'CONNECT_ENDPOINT', 'OPENRESTY_HOST', "
        "'OPENRESTY_PORT', 'RABBITMQ_HOST', 'DAEMON_MODE']; "
        "print('SEEN ' + json.dumps({k: os.environ.get(k) for k in keys})); sys.exit(3)"
    )
    bannou_pytester.preset(
        "probe",
        preset_yaml(
            "probe",
            f"""
            testers:
              - name: probe
                command: [python, -c, "{code}"]
                format: exit-code
            """,
            nodes="""
            nodes:
              - name: front
                appId: bannou
            """,
        ),
    )
    result = run_compose(bannou_pytester, docker_cli, "--bannou-preset=probe", "-rA")
    assert result.ret == 1
    result.assert_outcomes(failed=2)
    line = next(ln for ln in result.outlines if "SEEN {" in ln)
    seen = json.loads(line[line.index("SEEN ") + 5 :])
    assert seen["BANNOU_HTTP_ENDPOINT"] == "http://front:80"  # service name + container port
    assert seen["CONNECT_ENDPOINT"] == "front:80/connect"
    assert (seen["OPENRESTY_HOST"], seen["OPENRESTY_PORT"]) == ("front", "80")
    assert seen["RABBITMQ_HOST"] is None  # no rabbitmq node in this preset
    assert seen["DAEMON_MODE"] == "true"
    result.stdout.fnmatch_lines(["*exited with code 3*"])


def test_missing_tester_image_and_timeout_on_compose(bannou_pytester: BannouPytester, docker_cli) -> None:
    bannou_pytester.preset(
        "faults",
        preset_yaml(
            "faults",
            """
            testers:
              - name: ghost
                image: pytest-bannou-no-such-tester:never
                format: http-tester
              - name: sleeper
                command: [python, -c, "import time; time.sleep(120)"]
                format: exit-code
                timeout: 2s
            """,
        ),
    )
    result = run_compose(bannou_pytester, docker_cli, "--bannou-preset=faults", "-rA")
    assert result.ret == 1
    # ghost: (setup); sleeper: (timeout) only
    result.assert_outcomes(failed=2, errors=2)
    out = result.stdout.str()
    assert "image pytest-bannou-no-such-tester:never not found on the Docker Engine" in out
    assert "did not finish within 2 s and was killed" in out


@pytest.mark.swarm
def test_test_http_on_swarm(bannou_pytester: BannouPytester, docker_cli) -> None:
    if (docker_cli.info().get("Swarm") or {}).get("LocalNodeState") != "active":
        pytest.skip("needs a Docker Engine in swarm mode: run `docker swarm init`")
    report = bannou_pytester.pytester.path / "report"
    args = ("--bannou-backend=swarm", "--bannou-preset=test-http", f"--bannou-report={report}")
    result = nothing_left(bannou_pytester.run_subprocess(*args, timeout=240), docker_cli)
    assert result.ret == 0, result.stdout.str()
    data = json.loads((report / "results.json").read_text())
    assert "tester::http-tester::Health[test-http]" in {t["nodeid"] for t in data["tests"]}
    assert data["backend"] == "swarm"


def test_test_edge_with_full_infrastructure_passes_through_the_ingress(
    bannou_pytester: BannouPytester, docker_cli, monkeypatch
) -> None:
    # issue 15's acceptance: BANNOU_INFRA=true pytest --bannou-preset=test-edge
    # --bannou-backend=compose: MySQL, Redis, RabbitMQ and the ingress deployed, the edge-tester
    # on the external network, its WebSocket round trip through the ingress
    monkeypatch.setenv("BANNOU_INFRA", "true")
    report = bannou_pytester.pytester.path / "report"
    result = run_compose(
        bannou_pytester, docker_cli, "--bannou-preset=test-edge", f"--bannou-report={report}", "-v", "-rP"
    )
    assert result.ret == 0, result.stdout.str()
    assert "deploying test-edge on compose: 5 nodes" in result.stdout.str()
    # the case's own output (-rP): the upgrade at the ingress, the welcome from the node behind it
    result.stdout.fnmatch_lines(["*upgraded: ws://ingress:80/connect -> 101 Switching Protocols*"])
    data = json.loads((report / "results.json").read_text())
    cases = {t["nodeid"].split("::")[-1].split("[")[0]: t for t in data["tests"] if t["kind"] == "tester"}
    assert all(t["outcome"] == "passed" for t in cases.values()), cases
    assert {"Service Routing - connect", "Service Routing - auth", "WebSocket Connect - Echo"} <= set(cases)


def other_virtualenv(where: Path) -> str:
    """A second virtualenv that sees this one's packages (as a user's CI venv next to the one that
    built the images): its interpreter's path exists on the host and nowhere in the images."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    site = Path(sysconfig.get_paths(vars={"base": str(where), "platbase": str(where)})["purelib"])
    ours = sysconfig.get_paths()["purelib"]
    (site / "use-the-builders-packages.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return str(where / "bin" / "python")


def test_tester_runs_in_its_image_when_pytest_runs_from_another_virtualenv(
    bannou_pytester: BannouPytester, docker_cli
) -> None:
    # found by running the Done line from a fresh install: the stand-in images mount the Python
    # that built them, yet the tester container was told to exec the *running* interpreter
    # (`exec /other/venv/bin/python3 failed: No such file or directory`, exit 127)
    python = other_virtualenv(bannou_pytester.pytester.path / "other-venv")
    args = ("--bannou-backend=compose", "--bannou-preset=test-http")
    result = nothing_left(bannou_pytester.run_with(python, *args, timeout=240), docker_cli)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*tester*", "*passed*"])
    assert "No such file or directory" not in result.stdout.str()
