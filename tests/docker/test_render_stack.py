"""``bannou-env render PRESET --backend swarm`` run by hand with ``docker stack deploy`` (review 21,
item 3): the stand-ins' writable paths (``/tmp``, rabbitmq's home) must be tmpfs mounts the stack
deploy honours; a service-level ``tmpfs:`` key is ignored by it, and redis, mysql and rabbitmq
then exited at start."""

from __future__ import annotations

import contextlib
import shlex
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from pytest_bannou.backends.base import LABEL_RUN_ID
from pytest_bannou.backends.docker import engine as _docker
from pytest_bannou.cli import main
from pytest_bannou.environment.runs import new_run_id
from tests.support.docker_helpers import RUN_IDS

pytestmark = [pytest.mark.swarm, pytest.mark.usefixtures("local_images", "swarm_ready")]
DEADLINE_S = 180.0


def stack_tasks(name: str) -> dict[str, tuple[str, str]]:
    """Service -> (state, error) of its newest task, from ``docker stack ps``."""
    out = subprocess.run(
        ["docker", "stack", "ps", name, "--no-trunc", "--format", "{{.Name}}\t{{.CurrentState}}\t{{.Error}}"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    tasks: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        task, state, error = [*line.split("\t"), "", ""][:3]
        tasks.setdefault(task.split(".")[0].strip(" \\_"), (state.split(" ")[0], error))
    return tasks


def healthy(docker_client, name: str, services: list[str]) -> bool:
    """Every service of the stack has a running container whose healthcheck (if any) passed."""
    flt = {"label": [f"com.docker.stack.namespace={name}"], "status": "running"}
    seen = {}
    for c in docker_client.api.containers(filters=flt):
        svc = (c.get("Labels") or {}).get("com.docker.swarm.service.name", "")
        seen[svc] = "(health: starting)" not in c["Status"] and "(unhealthy)" not in c["Status"]
    return all(seen.get(f"{name}_{s}") for s in services)


def remove_stack(docker_client, name: str) -> None:
    """``docker stack rm NAME``, then wait until its network is gone (the engine removes it after
    the containers)."""
    subprocess.run(["docker", "stack", "rm", name], capture_output=True, timeout=120)
    flt = {"label": [f"com.docker.stack.namespace={name}"]}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (left := docker_client.api.networks(filters=flt)):
        # `docker stack rm` tries a network once: still in use by a stopping task's container
        # (slow on a loaded engine), it stays; try again once its containers are gone
        for network in left:
            with contextlib.suppress(Exception):
                docker_client.api.remove_network(network["Id"])
        time.sleep(0.5)
    assert docker_client.api.networks(filters=flt) == [], f"stack {name}: its network is still there"


def test_rendered_stand_in_stack_runs_with_docker_stack_deploy(capsys, monkeypatch, tmp_path, docker_client):
    monkeypatch.setenv("BANNOU_INFRA", "true")
    rid = new_run_id()  # one `bannou-env render --run-id` and `clean --run-id` take
    RUN_IDS.add(rid)  # the session checks it left nothing behind
    path = Path(tmp_path) / "stack.yaml"
    assert main(["render", "test-http", "--backend", "swarm", "--run-id", rid, "-o", str(path)]) == 0
    capsys.readouterr()
    text = path.read_text()
    services = list(yaml.safe_load(text)["services"])
    assert {"redis", "mysql", "rabbitmq", "bannou"} <= set(services)
    # the commands the file's header gives, as a user copies them
    run_line = next(line for line in text.splitlines() if line.startswith("# run: "))
    run, remove = run_line.removeprefix("# run: ").split("; remove: ")
    assert run == f"docker stack deploy --resolve-image never -c {path} {rid}"  # no registry pins
    assert remove == f"docker stack rm {rid}"
    name = rid
    try:
        subprocess.run(shlex.split(run), capture_output=True, text=True, timeout=120, check=True)
        deadline = time.monotonic() + DEADLINE_S
        while not healthy(docker_client, name, services):
            tasks = stack_tasks(name)
            failed = {
                s: t for s, t in tasks.items() if t[0] in ("Failed", "Rejected", "Shutdown", "Complete")
            }
            assert not failed, f"stack {name}: tasks ended: {failed}"
            assert time.monotonic() < deadline, f"stack {name} not healthy in {DEADLINE_S}s: {tasks}"
            time.sleep(1)
        # the header's other promise: `bannou-env clean --run-id` removes a hand-run stack
        assert main(["clean", "--run-id", rid, "--backend", "swarm"]) == 0
        assert f"service {rid}_redis (run id {rid})" in capsys.readouterr().out
        assert docker_client.services.list(filters={"label": f"{LABEL_RUN_ID}={rid}"}) == []
    finally:
        remove_stack(docker_client, name)
    assert _docker.labelled_leftovers(docker_client, rid) == []
