"""Fault injection on the Docker Engine (Compose and Swarm): ``docker kill``, ``pause`` /
``unpause`` and ``network disconnect`` / ``connect`` on the environment's network.

A mixin over ``EngineBackend``: each engine says which containers a node's replicas run in
(``_fault_containers``) and which network is the environment's (``_fault_network``). No state
is kept here: resume and reconnect ask the engine which containers are paused or cut off, so
they also undo what another instance of the same session did.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from ..._support.text import short_error
from ...errors import DeployError


class DockerFaults:
    """``Backend`` fault capabilities through the Docker SDK (``self.cli``)."""

    cli: Any
    name: str
    _endpoints: dict

    def _fault_containers(self, node: str, replica: int | None) -> Sequence[str]:
        """Container ids of the node's replicas (one when ``replica`` is given)."""
        raise NotImplementedError

    def _fault_network(self) -> str:
        """The environment's network: what nodes and published ports go through."""
        raise NotImplementedError

    def _fault(self, what: str, node: str, call: Any, *args: Any, **kwargs: Any) -> None:
        try:
            call(*args, **kwargs)
        except Exception as exc:  # docker.errors.APIError, without importing the SDK here
            problem = short_error(exc)
            raise DeployError(f"{self.name} backend: cannot {what} node {node!r}: {problem}") from None

    def kill_node(self, node: str, replica: int | None = None) -> None:
        for cid in self._fault_containers(node, replica):
            self._fault("kill", node, self.cli.api.kill, cid)
        self._endpoints.clear()  # a replacement container publishes other ports

    def pause_node(self, node: str) -> None:
        for cid in self._fault_containers(node, None):
            if self._state(cid).get("Status") != "paused":
                self._fault("pause", node, self.cli.api.pause, cid)

    def resume_node(self, node: str) -> None:
        for cid in self._fault_containers(node, None):
            if self._state(cid).get("Status") == "paused":
                self._fault("resume", node, self.cli.api.unpause, cid)

    def disconnect_node(self, node: str) -> None:
        net = self._fault_network()
        for cid in self._fault_containers(node, None):
            if net in self._networks(cid):
                cut = self.cli.api.disconnect_container_from_network
                self._fault("disconnect", node, cut, cid, net, force=True)
        self._endpoints.clear()

    def reconnect_node(self, node: str) -> None:
        net = self._fault_network()
        for cid in self._fault_containers(node, None):
            if net not in self._networks(cid):
                connect = self.cli.api.connect_container_to_network
                self._fault("reconnect", node, connect, cid, net, aliases=[node])
        self._endpoints.clear()

    def _inspect(self, cid: str) -> dict[str, Any]:
        with contextlib.suppress(Exception):  # gone meanwhile: nothing to undo
            return self.cli.api.inspect_container(cid)
        return {}

    def _state(self, cid: str) -> dict[str, Any]:
        return self._inspect(cid).get("State") or {}

    def _networks(self, cid: str) -> set[str]:
        info = self._inspect(cid)
        if not info:  # gone: count as connected, nothing to do
            return {self._fault_network()}
        return set(((info.get("NetworkSettings") or {}).get("Networks") or {}).keys())
