"""The Kubernetes backend: one namespace per environment.

Names are re-exported lazily (PEP 562) so that importing one submodule never imports
the others: the package stays free of import circles."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ANNOTATION_NODE": "backend",
    "ANNOTATION_RESTARTED_AT": "backend",
    "ANNOTATION_RESTARTS": "backend",
    "BUILD_HINT": "backend",
    "CLUSTER_HINT": "backend",
    "CONTAINER": "backend",
    "Connection": "backend",
    "FAIL_REASONS": "backend",
    "IMAGE_REASONS": "backend",
    "ImageMeta": "backend",
    "KubernetesBackend": "backend",
    "LABEL_BACKEND": "backend",
    "LABEL_OWNER_HOST": "backend",
    "LAYERLESS_HINT": "backend",
    "LOG_TAIL": "backend",
    "POLL": "backend",
    "REQUEST_TIMEOUT": "backend",
    "availability": "backend",
    "check_cluster": "backend",
    "connect": "backend",
    "label_value": "backend",
    "layered_image": "backend",
    "local_image_meta": "backend",
    "namespace_name": "backend",
    "object_name": "backend",
    "readiness_probe": "backend",
    "render_deployment": "backend",
    "render_manifests": "backend",
    "render_namespace": "backend",
    "render_service": "backend",
    "render_yaml": "backend",
    "resource_labels": "backend",
    "selector": "backend",
    "service_type": "backend",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
