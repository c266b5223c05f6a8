"""A tester container on Swarm after a transition that stops the ingress and recreates the node
the tester targets (review 21, item 2: test-edge -> test-http with BANNOU_INFRA=true). Swarm
stops a removed service's containers asynchronously: the old ingress still ran when the next
preset's tester started, so the tester joined the edge network, where the node it was given (by
its container id, the only alias swarm lists) does not resolve."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_bannou.backends.docker import engine as _docker
from tests.integration_testers.test_tester_docker import nothing_left
from tests.support.bannou_pytester import BannouPytester
from tests.support.testers import preset_yaml

ENGINE = _docker.engine_availability()
pytestmark = [
    pytest.mark.docker,
    pytest.mark.swarm,
    pytest.mark.skipif(not ENGINE, reason=f"needs a Docker Engine ({ENGINE.reason})"),
]

# resolves the node's host name and asks /health, for at most 30 s; prints what it saw
PROBE = (
    "import os, sys, time, urllib.request as u; e = os.environ['BANNOU_HTTP_ENDPOINT']; "
    "print('ENDPOINT ' + e, flush=True); end = time.monotonic() + 30; ok = False\\n"
    "while not ok and time.monotonic() < end:\\n"
    "    try: ok = u.urlopen(e + '/health', timeout=2).status == 200\\n"
    "    except Exception as x: print('not yet: %r' % x, flush=True); time.sleep(0.5)\\n"
    "sys.exit(0 if ok else 3)"
)


@pytest.fixture(scope="module")
def swarm_cli() -> Iterator:
    from pytest_bannou.backends.docker.images import ensure_images

    cli = _docker.client()
    if (cli.info().get("Swarm") or {}).get("LocalNodeState") != "active":
        cli.close()
        pytest.skip("needs a Docker Engine in swarm mode: run `docker swarm init`")
    ensure_images(cli, include_optional=False)
    yield cli
    cli.close()


def test_tester_reaches_a_recreated_node_after_the_ingress_stops(
    bannou_pytester: BannouPytester, swarm_cli
) -> None:
    node = """
        nodes:
          - name: bannou
            environment: {{FLAVOUR: {flavour}}}
        {infra}
        """
    trivial = "testers: [{name: ok, command: [python, -c, pass], format: exit-code}]\n"
    ingress = "infrastructure: {ingress: {enabled: true}}"
    bannou_pytester.preset("edge1", preset_yaml("edge1", trivial, node.format(flavour="a", infra=ingress)))
    probe = f'testers: [{{name: probe, command: [python, -c, "{PROBE}"], format: exit-code}}]\n'
    bannou_pytester.preset("plain2", preset_yaml("plain2", probe, node.format(flavour="b", infra="")))
    args = ("--bannou-backend=swarm", "--bannou-preset=edge1", "--bannou-preset=plain2")
    result = nothing_left(
        bannou_pytester.run_subprocess(*args, "--bannou-testers-only", "-rA", timeout=300), swarm_cli
    )
    out = result.stdout.str()
    assert "transition to plain2: stop ingress; recreate bannou" in out, out
    assert result.ret == 0, out
    # the node's in-network name, as on compose, not a task container's id
    result.stdout.fnmatch_lines(["*ENDPOINT http://bannou:80*"])
