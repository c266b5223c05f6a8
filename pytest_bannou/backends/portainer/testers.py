"""Testers given as an ``image`` on Portainer: a container on the stack's network, created, started,
waited for, read and removed through Portainer's Docker proxy (``/api/endpoints/{id}/docker/...``:
``containers/create``, ``start``, ``json``, ``kill``, ``logs``, ``archive``, ``DELETE``).

The container joins ``<project>_default`` and reaches every node by its Compose service name and
container port, as the stack's containers reach each other. It carries the run-id labels (``clean``
removes a leftover), its output is read with Docker's timestamps (the format ``testers.process``
writes), a ``junit`` tester's XML is copied out of it (``GET .../archive``) before it is removed,
and at the deadline it is killed.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ...topology.ingress import is_ingress
from ..base import Availability, TesterContainer, TesterContainerOutcome
from ..docker import engine as _docker
from ..docker.compose_file import service_name
from ..docker.testers import command_in_image, tester_labels
from .client import PortainerError, demux

POLL_S = 0.5


class PortainerTesters:
    """``Backend`` tester capabilities of ``PortainerBackend`` (a mixin: it uses ``_docker``,
    ``project`` and ``_mask``)."""

    project: str | None

    def tester_images(self) -> Availability:
        if self.project is None:
            return Availability(False, "the portainer backend has nothing deployed")
        return Availability(True, f"a container on {self.project}_default")

    def run_tester_container(self, tester: TesterContainer) -> TesterContainerOutcome:
        image = tester.image or _docker.DEFAULT_BANNOU_IMAGE
        network = f"{self.project}_default"
        topology = getattr(self, "topology", None)
        if topology is not None and any(is_ingress(n) for n in topology.nodes):
            # bannou's edge set-up: the client outside, reaching the ingress, not the nodes
            network = f"{self.project}_{_docker.EDGE_NETWORK}"
        resp = self._docker(  # type: ignore[attr-defined]
            "GET", f"/images/{quote(image, safe='')}/json", what=f"inspect image {image}", ok=(404,)
        )
        if resp.status_code == 404:
            return TesterContainerOutcome(
                None,
                False,
                0.0,
                image,
                network,
                tuple(tester.command),
                f"tester {tester.name!r}: image {image} not found on the Portainer environment's Docker "
                f"Engine. Nothing is pulled: {_docker.BUILD_IMAGES_HINT} on that Docker host, or "
                f"build/tag it with `docker build -t {image} .`",
            )
        info = _docker.image_info_from_attrs(image, resp.json())
        argv = command_in_image(tester.command, info.local_build, info.python)

        def address(node: str, port: int | None) -> tuple[str, int]:
            return service_name(node), int(port or 80)

        body = _create_body(tester, image, argv, dict(tester.environment(address)), info, network)
        start = time.monotonic()
        try:
            cid = self._docker(  # type: ignore[attr-defined]
                "POST", "/containers/create", json=body, what=f"create tester {tester.name}"
            ).json()["Id"]
        except PortainerError as exc:
            message = self._mask(
                f"tester {tester.name!r}: cannot create a container of {image}: {exc.message}"
            )  # type: ignore[attr-defined]
            return TesterContainerOutcome(None, False, 0.0, image, network, tuple(argv), message)
        try:
            return self._follow_tester(tester, cid, image, argv, network, start)
        finally:
            self._docker(  # type: ignore[attr-defined]
                "DELETE",
                f"/containers/{cid}",
                params={"force": "1", "v": "1"},
                ok=(404, 409),
                what=f"remove tester {tester.name}",
            )

    def _follow_tester(
        self, tester: TesterContainer, cid: str, image: str, argv: list[str], network: str, start: float
    ) -> TesterContainerOutcome:
        call = self._docker  # type: ignore[attr-defined]
        try:
            call("POST", f"/containers/{cid}/start", what=f"start tester {tester.name}")
        except PortainerError as exc:
            message = self._mask(
                f"tester {tester.name!r}: cannot start a container of {image}: {exc.message}"
            )  # type: ignore[attr-defined]
            return TesterContainerOutcome(None, False, 0.0, image, network, tuple(argv), message, cid)
        deadline = start + tester.timeout
        exit_code: int | None = None
        timed_out = False
        while True:
            state = call("GET", f"/containers/{cid}/json", what="inspect tester").json().get("State") or {}
            if not state.get("Running") and state.get("Status") in ("exited", "dead"):
                exit_code = int(state.get("ExitCode", -1))
                break
            if time.monotonic() >= deadline:
                timed_out = True
                call("POST", f"/containers/{cid}/kill", what=f"kill tester {tester.name}", ok=(404, 409))
                break
            time.sleep(min(POLL_S, max(0.05, deadline - time.monotonic())))
        logs = call(
            "GET",
            f"/containers/{cid}/logs",
            params={"stdout": "1", "stderr": "1", "timestamps": "1"},
            what=f"logs of tester {tester.name}",
        )
        tester.log_path.write_bytes(demux(logs.content))
        self._copy_junit(tester, cid)
        return TesterContainerOutcome(
            None if timed_out else exit_code,
            timed_out,
            time.monotonic() - start,
            image,
            network,
            tuple(argv),
            container=cid,
        )

    def _copy_junit(self, tester: TesterContainer, cid: str) -> None:
        """The JUnit XML a ``junit`` tester wrote inside its container, next to its log."""
        path = tester.log_path.with_name(tester.log_path.name.replace(".log", ".junit.xml"))
        resp = self._docker(  # type: ignore[attr-defined]
            "GET", f"/containers/{cid}/archive", params={"path": str(path)}, what="copy JUnit", ok=(404,)
        )
        if resp.status_code != 200:
            return
        with tarfile.open(fileobj=io.BytesIO(resp.content)) as tar:
            member = next((m for m in tar.getmembers() if m.isfile()), None)
            data = tar.extractfile(member) if member is not None else None
            if data is not None:
                path.write_bytes(data.read())


def _create_body(
    tester: TesterContainer,
    image: str,
    argv: list[str],
    environment: Mapping[str, str],
    info: _docker.ImageInfo,
    network: str,
) -> dict[str, Any]:
    """``POST /containers/create`` for the tester (Docker Engine API ``ContainerConfig``)."""
    body: dict[str, Any] = {
        "Image": image,
        "Env": [f"{k}={v}" for k, v in environment.items()],
        "Labels": tester_labels(tester),
        "WorkingDir": str(tester.log_path.parent),
        # an anonymous volume: what the tester writes there (its JUnit XML) outlives its exit
        # (an image's tmpfs does not) and goes with the container (``DELETE ?v=1``)
        "Volumes": {str(tester.log_path.parent): {}},
        "AttachStdin": False,
        "OpenStdin": False,
        "Tty": False,
        "HostConfig": {
            "NetworkMode": network,
            "Init": True,
            "Binds": _docker.host_mounts(info),
            "Tmpfs": {p: "" for p in info.tmpfs},
        },
    }
    if argv:
        body["Cmd"] = argv
    return json.loads(json.dumps(body))
