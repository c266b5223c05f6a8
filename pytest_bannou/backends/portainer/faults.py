"""Fault injection through Portainer's Docker proxy, as every other Portainer call: kill,
pause/unpause and network disconnect/connect of the stack's containers on the stack's
default network (``<project>_default``, as Compose names it)."""

from __future__ import annotations

from typing import Any


class PortainerFaults:
    """``Backend`` fault capabilities of ``PortainerBackend`` (a mixin: it uses ``_docker``,
    ``_container``, ``_replicas``, ``_require``, ``_invalidate`` and ``project``)."""

    project: str | None

    def _fault_ids(self, node: str, replica: int | None) -> list[str]:
        if replica is not None:
            return [self._container(node, replica)["Id"]]  # type: ignore[attr-defined]
        self._require(node)  # type: ignore[attr-defined]
        return [c["Id"] for c in self._replicas(node).values()]  # type: ignore[attr-defined]

    def _post(self, path: str, node: str, what: str, **kw: Any) -> None:
        self._docker("POST", path, what=f"{what} {node}", ok=(304, 409), **kw)  # type: ignore[attr-defined]

    def _inspect_fault(self, cid: str) -> dict[str, Any]:
        resp = self._docker("GET", f"/containers/{cid}/json", what="inspect container", ok=(404,))  # type: ignore[attr-defined]
        return resp.json() if resp.status_code == 200 else {}

    def kill_node(self, node: str, replica: int | None = None) -> None:
        for cid in self._fault_ids(node, replica):
            self._post(f"/containers/{cid}/kill", node, "kill")
        self._invalidate()  # type: ignore[attr-defined]

    def pause_node(self, node: str) -> None:
        for cid in self._fault_ids(node, None):
            self._post(f"/containers/{cid}/pause", node, "pause")

    def resume_node(self, node: str) -> None:
        for cid in self._fault_ids(node, None):
            if (self._inspect_fault(cid).get("State") or {}).get("Paused"):
                self._post(f"/containers/{cid}/unpause", node, "resume")

    def disconnect_node(self, node: str) -> None:
        net = f"{self.project}_default"
        for cid in self._fault_ids(node, None):
            body = {"Container": cid, "Force": True}
            self._post(f"/networks/{net}/disconnect", node, "disconnect", json=body)

    def reconnect_node(self, node: str) -> None:
        net = f"{self.project}_default"
        for cid in self._fault_ids(node, None):
            info = self._inspect_fault(cid)  # {} when gone: nothing to reconnect
            if info and net not in ((info.get("NetworkSettings") or {}).get("Networks") or {}):
                body = {"Container": cid, "EndpointConfig": {"Aliases": [node]}}
                self._post(f"/networks/{net}/connect", node, "reconnect", json=body)
