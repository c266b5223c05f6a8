"""``bannou-env render``: the printed file runs the preset by hand with plain Compose, and the
swarm variant is a stack file with host-mode ports."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest
import yaml

from pytest_bannou.backends.base import LABEL_OWNER_PID, LABEL_RUN_ID
from pytest_bannou.backends.docker import engine as _docker
from pytest_bannou.backends.docker.compose import ComposeBackend, compose_command
from pytest_bannou.cli import main
from pytest_bannou.environment.runs import new_run_id
from tests.support.docker_helpers import RUN_IDS

COMPOSE = ComposeBackend.available()
pytestmark = pytest.mark.usefixtures("local_images")


def render(capsys, *argv: str) -> dict:
    assert main(["render", *argv]) == 0
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.skipif(not COMPOSE, reason=f"needs Docker Compose v2: {COMPOSE.reason}")
def test_rendered_compose_file_runs_the_preset_by_hand(capsys, tmp_path, docker_client):
    rid = new_run_id()  # one `bannou-env clean --run-id` takes, as render now requires
    RUN_IDS.add(rid)
    doc = render(capsys, "split-auth", "--backend", "compose", "--run-id", rid, "--env", "EXTRA=1")
    main_svc = doc["services"]["bannou-main"]
    assert main_svc["labels"][LABEL_RUN_ID] == rid and LABEL_OWNER_PID not in main_svc["labels"]
    assert main_svc["environment"]["EXTRA"] == "1"
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(doc))
    cmd = [*compose_command().argv, "-f", str(path)]
    try:
        subprocess.run([*cmd, "up", "-d", "--wait", "--wait-timeout", "60"], check=True, capture_output=True)
        out = subprocess.run([*cmd, "port", "bannou-auth", "80"], check=True, capture_output=True, text=True)
        host_port = out.stdout.strip().rsplit(":", 1)[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{host_port}/health", timeout=10) as resp:
            body = json.load(resp)
        assert body["appId"] == "bannou-auth" and "auth" in body["services"]
    finally:
        subprocess.run([*cmd, "down", "-v", "-t", "5"], capture_output=True, timeout=120)
    assert _docker.labelled_leftovers(docker_client, rid) == []
    # owner-less resources are never "stale": clean --all-stale leaves hand-run files alone
    assert _docker.owner_alive({LABEL_RUN_ID: rid})


def test_rendered_stack_file_publishes_host_mode_ports(capsys):
    doc = render(capsys, "split-auth", "--backend", "swarm", "--replicas", "bannou-auth=2")
    auth = doc["services"]["bannou-auth"]
    assert auth["deploy"]["replicas"] == 2 and auth["deploy"]["endpoint_mode"] == "dnsrr"
    assert auth["ports"] == [{"target": 80, "protocol": "tcp", "mode": "host"}]
    assert auth["deploy"]["update_config"]["order"] == "start-first"
    assert doc["networks"]["default"]["driver"] == "overlay"


def test_bad_override_is_a_one_line_error(capsys):
    assert main(["render", "monolith", "--env", "NO_EQUALS_SIGN"]) == 2  # a usage error (issue 16: exit 2)
    assert "--env 'NO_EQUALS_SIGN' must look like KEY=VALUE" in capsys.readouterr().err
