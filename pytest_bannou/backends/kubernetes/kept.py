"""Taking over a kept run's namespace from another process (``Backend.reattach``, used by
``bannou-env update``/``rollback``): the namespace is found by its run-id label; the next change
updates only the Deployments that differ, so the other pods (and their node ports) stay."""

from __future__ import annotations

from typing import Any

from ...errors import DeployError
from ...topology.model import Topology
from ..base import LABEL_RUN_ID, BackendOptions
from .connection import REQUEST_TIMEOUT
from .manifests import local_image_meta
from .names import label_value, namespace_name


class KubernetesReattach:
    """``Backend.reattach`` of ``KubernetesBackend`` (a mixin: it uses ``_connect``, ``core``,
    ``_conn``, ``namespace``, ``_images`` and ``topology`` of the backend)."""

    namespace: str | None
    options: BackendOptions
    topology: Topology | None
    core: Any
    _images: dict[str, Any]

    def reattach(self, topology: Topology, deadline: float) -> None:
        self._connect()  # type: ignore[attr-defined]
        run_id = self.options.run_id
        found = [
            ns.metadata.name
            for ns in self.core.list_namespace(
                label_selector=f"{LABEL_RUN_ID}={label_value(run_id)}", _request_timeout=REQUEST_TIMEOUT
            ).items
            if not (ns.status and ns.status.phase == "Terminating")
        ]
        if not found:
            conn = getattr(self, "_conn", None)
            raise DeployError(
                f"kubernetes backend: run {run_id} has no namespace on {conn.host if conn else '?'}"
                f" (preset {topology.preset!r}); remove it with `bannou-env clean --run-id {run_id}`"
                " and deploy it again"
            )
        expected = namespace_name(self.options, topology)
        self.namespace = expected if expected in found else sorted(found)[0]
        self._images = dict(local_image_meta(topology))
        self.topology = topology
