"""Testers given as an ``image`` on the local backend: a container on the host's network through
the local Docker Engine (reaching the nodes at their 127.0.0.1 ports), one result per case,
secrets masked, killed and removed at the deadline; skipped with the reason without Docker."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from pytest_bannou._support.masking import MASK
from pytest_bannou.backends.docker import engine as _docker
from tests.support.bannou_pytester import BannouPytester
from tests.support.testers import preset_yaml

ENGINE = _docker.engine_availability()
needs_docker = pytest.mark.skipif(
    not ENGINE,
    reason=f"needs a Docker Engine ({ENGINE.reason}); install docker.io and start dockerd",
)
SECRET = "s3cr3t-tester-value-42"
PROBE = (
    "import json, os, sys; keys = ['BANNOU_HTTP_ENDPOINT', 'CONNECT_ENDPOINT', 'ADMIN_PASSWORD', "
    "'DAEMON_MODE']; seen = {k: os.environ.get(k) for k in keys}; "
    "seen['IN_CONTAINER'] = os.path.exists('/.dockerenv'); print('SEEN ' + json.dumps(seen)); sys.exit(3)"
)
IMAGE_TESTERS = f"""
    testers:
      - name: http
        image: bannou:latest
        command: [python, -m, pytest_bannou.reference.tester, --format, http-tester]
        format: http-tester
      - name: probe
        image: bannou:latest
        command: [python, -c, "{PROBE}"]
        format: exit-code
        environment:
          ADMIN_PASSWORD: {SECRET}
      - name: sleeper
        image: bannou:latest
        command: [python, -c, "import time; time.sleep(300)"]
        format: exit-code
        timeout: 3s
    """


@pytest.fixture(scope="module")
def docker_cli() -> Iterator:
    from pytest_bannou.backends.docker.images import ensure_images

    cli = _docker.client()
    ensure_images(cli, include_optional=False)
    yield cli
    cli.close()


def run_id_of(result: pytest.RunResult) -> str:
    match = re.search(r"run id (bannou-[0-9a-f]+)", result.stdout.str())
    assert match, result.stdout.str()
    return match.group(1)


@needs_docker
@pytest.mark.docker
def test_image_testers_on_local_run_in_docker_on_the_host_network(
    bannou_pytester: BannouPytester, docker_cli
) -> None:
    bannou_pytester.preset("imgs", preset_yaml("imgs", IMAGE_TESTERS))
    report = bannou_pytester.pytester.path / "report"
    result = bannou_pytester.run_subprocess(
        "--bannou-preset=imgs", f"--bannou-report={report}", "-rA", "-v", timeout=240
    )
    out = result.stdout.str()
    # http: its cases pass one by one; probe: exit code 3 (item + case fail); sleeper: timeout
    assert "tester::http::Health[imgs] PASSED" in out, out
    data = json.loads((report / "results.json").read_text())
    http = [t for t in data["tests"] if t["nodeid"].startswith("tester::http::")]
    assert len(http) > 5 and all(t["outcome"] == "passed" for t in http)
    result.assert_outcomes(passed=1 + len(http), failed=3, errors=1)
    line = next(ln for ln in result.outlines if "SEEN {" in ln)
    seen = json.loads(line[line.index("SEEN ") + 5 :])
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", seen["BANNOU_HTTP_ENDPOINT"])  # published port
    assert seen["DAEMON_MODE"] == "true" and seen["IN_CONTAINER"] is True
    assert SECRET not in out and seen["ADMIN_PASSWORD"] == MASK
    assert "did not finish within 3 s and was killed" in out
    # every container that ran is gone (found by the run id's labels)
    assert _docker.labelled_leftovers(docker_cli, run_id_of(result)) == []


def test_image_tester_on_local_without_docker_is_skipped_with_the_reason(
    bannou_pytester: BannouPytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    bannou_pytester.preset(
        "imageonly",
        preset_yaml(
            "imageonly",
            """
            testers:
              - name: upstream
                image: bannou-http-tester:latest
                format: http-tester
            """,
        ),
    )
    # an engine that is not there: a socket path nothing listens on
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    result = bannou_pytester.run_subprocess("--bannou-preset=imageonly", "-rs")
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        ["*SKIPPED*tester 'upstream'*runs in a container on the local Docker Engine*start dockerd*"]
    )
