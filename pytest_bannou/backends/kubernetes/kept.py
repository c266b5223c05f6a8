"""Taking over a kept run's namespace from another process (``Backend.reattach``, used by
``bannou-env update``/``rollback``/``status``/``logs``): the namespace is found by its run-id
label; the next change updates only the Deployments that differ, so the other pods (and their
node ports) stay. ``detach`` closes this process's port-forwards; ``kept_hints`` tells the user
that those die with the command and how to reach a node afterwards."""

from __future__ import annotations

from typing import Any

from ...errors import DeployError
from ...topology.model import Topology
from ..base import LABEL_RUN_ID, BackendOptions
from .connection import REQUEST_TIMEOUT
from .manifests import local_image_meta
from .names import label_value, namespace_name, object_name
from .options import service_type


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

    def detach(self) -> None:
        """Close this process's port-forwards and clients; the namespace keeps running."""
        self._drop_forwarders()  # type: ignore[attr-defined]
        self._close_clients()  # type: ignore[attr-defined]

    def kept_hints(self) -> list[str]:
        """With ClusterIP Services (the default) the URLs are 127.0.0.1 port-forwards of this
        process: say so, give the ``kubectl port-forward`` of each node, and how to deploy with
        NodePorts for URLs that last. NodePort URLs last: nothing to say."""
        if self.topology is None or self.namespace is None or service_type(self.options) == "NodePort":
            return []
        ns = self.namespace
        lines = [
            "the 127.0.0.1 URLs are port-forwards of this command: they close when this command exits;",
            "reach a node with `kubectl port-forward` (it prints the 127.0.0.1 port it picked):",
        ]
        for node in self.topology.nodes:
            if node.ports:
                ports = " ".join(f":{p}" for p in node.ports)
                lines.append(f"  kubectl -n {ns} port-forward svc/{object_name(node.name)} {ports}")
        lines.append(
            f"`bannou-env status --run-id {self.options.run_id}` checks the nodes through port-forwards"
            " of its own; for URLs that last, deploy with --backend-option kubernetes_service_type=NodePort"
            " --backend-option kubernetes_node_address=ADDRESS (an address of the cluster's nodes)"
        )
        return lines
