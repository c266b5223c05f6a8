"""The local scratch images: metadata only, host programs through the labelled mounts, rebuilt
only when what they describe changes."""

from __future__ import annotations

import sys

from pytest_bannou.backends.docker import engine as _docker
from pytest_bannou.backends.docker import images


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
