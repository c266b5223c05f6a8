"""Fault injection on Kubernetes: ``kill`` deletes the replica's pod with no grace period (a
FROM-scratch image has no ``kill`` to exec), and the Deployment starts a new one: a restart,
counted in ``status()``. Pausing a pod has no Kubernetes equivalent, and cutting one off needs a
CNI that enforces NetworkPolicy, which the plugin cannot rely on: both are a clear error.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..base import ReplicaStatus
from .connection import REQUEST_TIMEOUT

_NO_PAUSE = "Kubernetes has no way to freeze a pod's containers"
_NO_POLICY = "cutting a pod off needs a CNI that enforces NetworkPolicy; this cluster's is not known to"


class KubernetesFaults:
    """``Backend`` fault capabilities of ``KubernetesBackend`` (a mixin: it uses ``_pod``,
    ``_pods``, ``core`` and ``namespace`` of the backend)."""

    namespace: str | None
    core: Any

    def kill_node(self, node: str, replica: int | None = None) -> None:
        pods = [self._pod(node, replica)] if replica is not None else self._fault_pods(node)  # type: ignore[attr-defined]
        kills = self._kill_counts()
        for i, pod in enumerate(pods):
            self.core.delete_namespaced_pod(
                pod.metadata.name, self.namespace, grace_period_seconds=0, _request_timeout=REQUEST_TIMEOUT
            )
            index = replica if replica is not None else i
            kills[(node, index)] = kills.get((node, index), 0) + 1
        live = {p.metadata.name for p in self._pods()}  # type: ignore[attr-defined]  # killed ones terminate
        self._drop_forwarders(keep=live)  # type: ignore[attr-defined]

    def _kill_counts(self) -> dict[tuple[str, int], int]:
        """(node, replica) -> pods of it killed by this instance (made on first use: the
        backend's ``__init__`` knows nothing of faults)."""
        if "_kills" not in self.__dict__:
            self.__dict__["_kills"] = {}
        return self.__dict__["_kills"]

    def _fault_pods(self, node: str) -> list[Any]:
        self._require(node)  # type: ignore[attr-defined]
        return list(self._pods(node))  # type: ignore[attr-defined]

    def with_kills(self, status: ReplicaStatus) -> ReplicaStatus:
        """``status`` with the pods this instance killed counted as restarts (the Deployment
        replaced them: a new pod starts with no restarts of its own)."""
        killed = self._kill_counts().get((status.node, status.replica), 0)
        return replace(status, restarts=status.restarts + killed) if killed else status

    def pause_node(self, node: str) -> None:
        raise self.fault_unsupported("pause", _NO_PAUSE)  # type: ignore[attr-defined]

    def resume_node(self, node: str) -> None:
        raise self.fault_unsupported("pause", _NO_PAUSE)  # type: ignore[attr-defined]

    def disconnect_node(self, node: str) -> None:
        raise self.fault_unsupported("disconnect", _NO_POLICY)  # type: ignore[attr-defined]

    def reconnect_node(self, node: str) -> None:
        raise self.fault_unsupported("disconnect", _NO_POLICY)  # type: ignore[attr-defined]
