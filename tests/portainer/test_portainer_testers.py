"""Testers given as an ``image`` on Portainer (the stand-in, real Docker): a container on the stack's
network through the Docker proxy, its output parsed per case, killed and removed at the deadline,
never left behind."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_bannou._support.masking import MASK
from pytest_bannou.backends import base
from pytest_bannou.backends.base import BackendOptions
from pytest_bannou.backends.docker import engine as _docker
from pytest_bannou.backends.portainer.backend import PortainerBackend
from pytest_bannou.testers.endpoints import endpoint_variables
from tests.support.backends import deploy_ready, node, topology_maker
from tests.support.bannou_pytester import BannouPytester
from tests.support.portainer_standin import new_run_id
from tests.support.testers import preset_yaml

topo = topology_maker("portainer-testers", "h1")
SECRET = "ptn-s3cr3t-tester-value"


@pytest.fixture
def deployed(tmp_path: Path, api_key_extra, local_images):
    rid = new_run_id("ptt")
    b = PortainerBackend(
        BackendOptions(run_id=rid, workdir=tmp_path / rid, ready_timeout=60, extra=api_key_extra)
    )
    try:
        deploy_ready(b, topo(node("web")))
        yield b
    finally:
        b.teardown()


def make_tester(
    b: PortainerBackend, tmp_path: Path, name: str, command: list[str], timeout: float = 60, fmt=""
):
    assert b.topology is not None
    topology = b.topology
    return base.TesterContainer(
        name=name,
        run_id=b.run_id,
        backend="portainer",
        env_key="testers",
        image=_docker.DEFAULT_BANNOU_IMAGE,
        command=tuple(command),
        target="web",
        environment=lambda address: {
            **endpoint_variables(topology, "web", address),
            "DAEMON_MODE": "true",
            "BANNOU_TESTER_JUNIT": str(tmp_path / f"tester-{name}.junit.xml"),
        },
        workdir=tmp_path,
        log_path=tmp_path / f"tester-{name}.log",
        timeout=timeout,
    )


def gone(cid: str) -> bool:
    import docker as docker_sdk

    cli = _docker.client()
    try:
        cli.containers.get(cid)
    except docker_sdk.errors.NotFound:
        return True
    finally:
        cli.close()
    return False


def test_tester_container_reaches_the_stack_by_service_name(
    deployed: PortainerBackend, tmp_path: Path
) -> None:
    assert deployed.tester_images()
    t = make_tester(
        deployed,
        tmp_path,
        "http",
        ["python", "-m", "pytest_bannou.reference.tester", "--format", "http-tester"],
    )
    out = deployed.run_tester_container(t)
    log = t.log_path.read_text()
    assert out.error is None and out.exit_code == 0 and not out.timed_out, log
    assert out.network == f"{deployed.project}_default"
    assert re.search(r"^\d{4}-\d\d-\d\dT\S+Z .*Health", log, re.M), log
    assert gone(out.container)


def test_junit_written_in_the_container_is_copied_out(deployed: PortainerBackend, tmp_path: Path) -> None:
    code = (
        "import os; open(os.environ['BANNOU_TESTER_JUNIT'], 'w').write("
        '\'<testsuite name="s" tests="1"><testcase classname="c" name="one"/></testsuite>\')'
    )
    t = make_tester(deployed, tmp_path, "junit", ["python", "-c", code])
    out = deployed.run_tester_container(t)
    assert out.exit_code == 0, t.log_path.read_text()
    assert 'name="one"' in (tmp_path / "tester-junit.junit.xml").read_text()
    assert gone(out.container)


def test_tester_killed_and_removed_at_the_deadline(deployed: PortainerBackend, tmp_path: Path) -> None:
    t = make_tester(
        deployed, tmp_path, "sleeper", ["python", "-c", "import time; time.sleep(300)"], timeout=3
    )
    out = deployed.run_tester_container(t)
    assert out.timed_out and out.exit_code is None and 3 <= out.duration < 60
    assert gone(out.container)


def test_missing_tester_image_is_a_setup_error(deployed: PortainerBackend, tmp_path: Path) -> None:
    t = replace(make_tester(deployed, tmp_path, "ghost", []), image="pytest-bannou-no-such-tester:never")
    out = deployed.run_tester_container(t)
    assert out.error is not None and "image pytest-bannou-no-such-tester:never not found" in out.error


def test_image_testers_on_portainer_are_tester_items(
    bannou_pytester: BannouPytester, api_key_extra, local_images, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in api_key_extra.items():
        monkeypatch.setenv(f"BANNOU_PORTAINER_{key.upper()}", value)
    probe = (
        "import json, os, sys; keys = ['BANNOU_HTTP_ENDPOINT', 'ADMIN_PASSWORD']; "
        "print('SEEN ' + json.dumps({k: os.environ.get(k) for k in keys})); sys.exit(3)"
    )
    bannou_pytester.preset(
        "ptnimg",
        preset_yaml(
            "ptnimg",
            f"""
            testers:
              - name: http
                image: bannou:latest
                command: [python, -m, pytest_bannou.reference.tester, --format, http-tester]
                format: http-tester
              - name: probe
                image: bannou:latest
                command: [python, -c, "{probe}"]
                format: exit-code
                environment:
                  ADMIN_PASSWORD: {SECRET}
            """,
        ),
    )
    report = bannou_pytester.pytester.path / "report"
    result = bannou_pytester.run_subprocess(
        "--bannou-backend=portainer",
        "--bannou-preset=ptnimg",
        f"--bannou-report={report}",
        "-rA",
        timeout=240,
    )
    out = result.stdout.str()
    match = re.search(r"run id (bannou-[0-9a-f]+)", out)
    assert match, out
    cli = _docker.client()
    try:
        assert _docker.labelled_leftovers(cli, match.group(1)) == []
    finally:
        cli.close()
    data = json.loads((report / "results.json").read_text())
    http = [t for t in data["tests"] if t["nodeid"].startswith("tester::http::")]
    assert len(http) > 5 and all(t["outcome"] == "passed" for t in http), out
    result.assert_outcomes(passed=1 + len(http), failed=2)
    line = next(ln for ln in result.outlines if "SEEN {" in ln)
    seen = json.loads(line[line.index("SEEN ") + 5 :])
    assert seen["BANNOU_HTTP_ENDPOINT"] == "http://main:80"  # the Compose service name
    assert SECRET not in out and seen["ADMIN_PASSWORD"] == MASK


EDGE = """\
name: portainer-edge
topology:
  nodes:
    - name: web
      services: [auth, connect]
  infrastructure:
    ingress:
      enabled: true
"""
PROBE = (
    "import json, urllib.request as u\n"
    "def get(url):\n"
    "    try:\n"
    "        return u.urlopen(url, timeout=3).read().decode().strip()\n"
    "    except Exception as exc:\n"
    "        return 'unreachable: ' + type(exc).__name__\n"
    "print('PROBE ' + json.dumps({'ingress': get('http://ingress:80/health'), 'web': get('http://web:80/health')}))\n"
)


def test_a_tester_of_a_preset_with_an_ingress_sits_on_the_external_side(
    tmp_path: Path, api_key_extra, local_images
) -> None:
    from pytest_bannou.preset.library import load_file
    from pytest_bannou.preset.resolve import resolve

    (tmp_path / "edge.yaml").write_text(EDGE)
    rid = new_run_id("pte")
    b = PortainerBackend(
        BackendOptions(run_id=rid, workdir=tmp_path / rid, ready_timeout=90, extra=api_key_extra)
    )
    try:
        deploy_ready(b, resolve(load_file(tmp_path / "edge.yaml")), timeout=180)
        t = make_tester(b, tmp_path, "probe", ["python", "-c", PROBE])
        out = b.run_tester_container(t)
        log = t.log_path.read_text()
        assert out.exit_code == 0, log
        assert out.network == f"{b.project}_external"
        seen = json.loads(log.split("PROBE ", 1)[1].splitlines()[0])
        assert seen["ingress"] == "OpenResty OK" and seen["web"].startswith("unreachable"), seen
        assert gone(out.container)
    finally:
        b.teardown()
