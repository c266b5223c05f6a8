"""The local scratch images: metadata only, host programs through the labelled mounts, rebuilt
only when what they describe changes."""

from __future__ import annotations

import io
import json
import sys
import uuid
from collections.abc import Iterator

import pytest

from pytest_bannou.backends.docker import engine as _docker
from pytest_bannou.backends.docker import images
from pytest_bannou.backends.docker.testers import command_in_image
from pytest_bannou.backends.kubernetes.manifests import local_image_meta
from pytest_bannou.errors import DeployError
from pytest_bannou.topology.model import Node, Topology


def test_ensure_images_is_idempotent(docker_client, local_images):
    assert "bannou:latest" in local_images
    before = {tag: docker_client.images.get(tag).id for tag in local_images}
    assert images.ensure_images(docker_client) == local_images
    assert {tag: docker_client.images.get(tag).id for tag in local_images} == before


def test_image_carries_only_metadata_and_the_mount_contract(docker_client, local_images):
    img = docker_client.images.get("bannou:latest")
    # FROM scratch plus one marker file: a layer, so a dockershim kubelet accepts the image
    assert len(img.attrs["RootFS"].get("Layers") or []) == 1 and 0 < img.attrs["Size"] < 1024
    info = _docker.image_info(docker_client, "bannou:latest")
    assert info is not None and info.local_build
    assert {"/usr", "/etc"} <= set(info.host_mounts) and "/tmp" in info.tmpfs
    assert any(sys.base_prefix == m or sys.base_prefix.startswith(m + "/") for m in info.host_mounts)
    cmd = img.attrs["Config"]["Cmd"]
    assert cmd[-2:] == ["-m", "pytest_bannou.reference.node"]


def test_a_container_of_the_image_runs_the_reference_node(docker_client, local_images):
    info = _docker.image_info(docker_client, "bannou:latest")
    volumes = {m.split(":")[0]: {"bind": m.split(":")[1], "mode": "ro"} for m in _docker.host_mounts(info)}
    out = docker_client.containers.run(
        "bannou:latest",
        ["/usr/bin/env", "python3", "-c", "import pytest_bannou.reference.node as n; print(n.DEFAULT_PORT)"],
        volumes=volumes,
        tmpfs={"/tmp": ""},
        init=True,
        remove=True,
    )
    assert out.decode().strip() == "80"


def test_known_infos_match_what_the_engine_reports(docker_client, local_images):
    for tag, known in images.known_infos().items():
        if tag in local_images:
            actual = _docker.image_info(docker_client, tag)
            assert actual is not None and actual.host_mounts == known.host_mounts


def test_python_images_name_the_interpreter_they_were_built_for(docker_client, local_images):
    for tag in ("bannou:latest", "mysql:8.0"):
        if tag in local_images:
            info = _docker.image_info(docker_client, tag)
            assert info is not None and info.python == images.interpreter()
            labels = docker_client.images.get(tag).attrs["Config"]["Labels"]
            assert labels[_docker.LABEL_PYTHON] == images.interpreter()
    redis = _docker.image_info(docker_client, "redis:7")
    assert redis is not None and redis.local_build and redis.python == ""  # runs no Python


def test_a_stand_in_built_before_the_label_is_read_from_its_command():
    attrs = {
        "Id": "sha256:x",
        "Config": {
            "Labels": {_docker.LABEL_HOST_MOUNTS: "/usr,/opt/venv"},
            "Cmd": ["/opt/venv/bin/python3", "-m", "pytest_bannou.reference.node"],
        },
    }
    assert _docker.image_info_from_attrs("bannou:latest", attrs).python == "/opt/venv/bin/python3"
    public = {"Config": {"Cmd": ["/usr/local/bin/python3", "app.py"]}}  # not a stand-in: no mounts
    assert _docker.image_info_from_attrs("app:1", public).python == ""


@pytest.mark.parametrize(
    ("stand_in", "image_python", "expected"),
    [
        (True, "/opt/venv/bin/python3", "/opt/venv/bin/python3"),  # the image's, not this process's
        (True, "", images.interpreter()),  # a stand-in that does not say: this process's
        (False, "/opt/venv/bin/python3", "python"),  # a public image runs the command as given
    ],
)
def test_a_tester_command_runs_the_images_interpreter(stand_in, image_python, expected):
    argv = command_in_image(["python", "-m", "pytest_bannou.reference.tester"], stand_in, image_python)
    assert argv == [expected, "-m", "pytest_bannou.reference.tester"]
    assert command_in_image(["/bin/sh", "-c", "true"], True, "/opt/venv/bin/python3")[0] == "/bin/sh"


@pytest.fixture
def stale_stand_in(docker_client, tmp_path) -> Iterator[str]:
    """A stand-in whose interpreter is gone, as after its virtualenv was removed."""
    gone = str(tmp_path / "removed-venv" / "bin" / "python3")
    tag = f"pytest-bannou-stale-{uuid.uuid4().hex[:8]}:test"
    labels = {_docker.LABEL_HOST_MOUNTS: "/usr", _docker.LABEL_PYTHON: gone}
    dockerfile = f"FROM scratch\nLABEL {' '.join(f'{k}={json.dumps(v)}' for k, v in labels.items())}\n"
    dockerfile += f"CMD {json.dumps([gone, '-m', 'pytest_bannou.reference.node'])}\n"
    image, _ = docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    try:
        yield tag
    finally:
        docker_client.images.remove(image.id, force=True)


def test_a_stand_in_whose_interpreter_is_gone_is_refused_with_the_rebuild_command(
    docker_client, stale_stand_in
):
    topology = Topology(preset="stale", nodes=(Node(name="bannou", app_id="bannou", image=stale_stand_in),))
    with pytest.raises(DeployError) as compose_error:
        _docker.inspect_images(docker_client, topology)
    message = str(compose_error.value)
    assert f"{stale_stand_in} (node bannou; built for " in message and "which is gone" in message
    assert "python -m pytest_bannou.backends.docker.images" in message
    with pytest.raises(DeployError, match=r"which is gone.*pytest_bannou\.backends\.docker\.images"):
        local_image_meta(topology)  # the kubernetes backend reads the same labels


def test_an_interpreter_typed_with_dot_dot_is_written_as_the_container_sees_it(monkeypatch, tmp_path):
    # `cd proj && ../venv/bin/python -m pytest_bannou.backends.docker.images`: Python keeps the
    # `..`, and inside the container `proj` does not exist (exec failed, exit 127)
    (tmp_path / "proj").mkdir()
    monkeypatch.setattr(sys, "executable", f"{tmp_path}/proj/../venv/bin/python")
    assert images.interpreter() == f"{tmp_path}/venv/bin/python"
    node = next(s for s in images.specs() if s.tag == "bannou:latest")
    text, _ = images.dockerfile(node)
    assert f'CMD ["{tmp_path}/venv/bin/python", "-m", "pytest_bannou.reference.node"]' in text
    assert f'{_docker.LABEL_PYTHON}="{tmp_path}/venv/bin/python"' in text and ".." not in text
