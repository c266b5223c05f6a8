"""The engine helpers against containers that go away while they look: another session (or
``docker rm``) removing a container between the list and the inspect must not fail a sweep."""

from __future__ import annotations

import docker
import pytest

from pytest_bannou.backends.base import LABEL_OWNER_PID, LABEL_RUN_ID
from pytest_bannou.backends.docker import engine as _docker
from tests.support.docker_helpers import new_run_id


@pytest.fixture
def vanishing(docker_client, local_images, monkeypatch):
    """A labelled container of a dead owner that the engine lists, then says is gone when it
    is inspected (the race, made certain)."""
    run_id = new_run_id()
    container = docker_client.containers.create(
        "bannou:latest", labels={LABEL_RUN_ID: run_id, LABEL_OWNER_PID: "999999999"}
    )
    real_inspect = docker_client.api.inspect_container

    def inspect(container_id, *args, **kwargs):
        if container_id.startswith(container.id) or container.id.startswith(container_id):
            raise docker.errors.NotFound(f"No such container: {container_id}")
        return real_inspect(container_id, *args, **kwargs)

    monkeypatch.setattr(docker_client.api, "inspect_container", inspect)
    monkeypatch.setattr(_docker, "client", lambda timeout=30.0: docker_client)
    monkeypatch.setattr(docker_client, "close", lambda: None)
    yield run_id
    monkeypatch.undo()
    container.remove(force=True)


def test_a_container_removed_while_listed_does_not_fail_the_sweep(vanishing, docker_client):
    assert _docker.clean_by_label(docker_client, vanishing) == []
    assert _docker.labelled_leftovers(docker_client, vanishing) == []  # what the engine still says
    assert vanishing not in _docker.dead_runs()


def test_containers_of_kubernetes_pods_are_left_to_the_kubernetes_backend(docker_client, local_images):
    # dockershim gives a pod's containers the pod's labels, run id included: a Docker sweep
    # must not remove them (the kubelet would fight it; the namespace is the Kubernetes
    # backend's to remove), whether its owner is gone or the run id is named
    run_id = new_run_id()
    labels = {LABEL_RUN_ID: run_id, LABEL_OWNER_PID: "999999999", _docker.KUBELET_LABEL: "bannou-x"}
    container = docker_client.containers.create("bannou:latest", labels=labels)
    try:
        assert run_id not in _docker.dead_runs()
        assert _docker.clean_by_label(docker_client, run_id) == []
        container.reload()  # still there
    finally:
        container.remove(force=True)
