"""The Kubernetes backend: one namespace per environment.

Names are re-exported lazily (PEP 562) so that importing one submodule never imports
the others: the package stays free of import circles."""

from __future__ import annotations

from ..._support.lazy import lazy_exports

_EXPORTS = {
    "ANNOTATION_NODE": "names",
    "ANNOTATION_RESTARTED_AT": "names",
    "ANNOTATION_RESTARTS": "names",
    "BUILD_HINT": "pods",
    "CLUSTER_HINT": "connection",
    "CONTAINER": "names",
    "Connection": "connection",
    "FAIL_REASONS": "pods",
    "IMAGE_REASONS": "pods",
    "ImageMeta": "manifests",
    "KubernetesBackend": "backend",
    "LABEL_BACKEND": "names",
    "LABEL_OWNER_HOST": "names",
    "LAYERLESS_HINT": "pods",
    "LOG_TAIL": "pods",
    "POLL": "pods",
    "REQUEST_TIMEOUT": "connection",
    "availability": "connection",
    "check_cluster": "connection",
    "connect": "connection",
    "label_value": "names",
    "layered_image": "manifests",
    "local_image_meta": "manifests",
    "namespace_name": "names",
    "object_name": "names",
    "readiness_probe": "manifests",
    "render_deployment": "manifests",
    "render_manifests": "manifests",
    "render_namespace": "manifests",
    "render_service": "manifests",
    "render_yaml": "manifests",
    "resource_labels": "names",
    "selector": "names",
    "service_type": "options",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
