"""Names, labels and annotations of the objects the Kubernetes backend creates: valid DNS labels
and label values, hash-suffixed when a preset's name had to change, so that two names never map
to the same object."""

from __future__ import annotations

import hashlib
import os
import re

from ...topology.model import Topology
from ..base import LABEL_NODE, LABEL_PREFIX, LABEL_RUN_ID, BackendOptions
from ..docker import engine as _docker

LABEL_OWNER_HOST = _docker.LABEL_OWNER_HOST
LABEL_BACKEND = _docker.LABEL_BACKEND
ANNOTATION_NODE = f"{LABEL_PREFIX}.node-name"  # the node's name as the preset wrote it
ANNOTATION_RESTARTS = f"{LABEL_PREFIX}.restarts"  # restarts this backend did (pod template)
ANNOTATION_RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"  # what `kubectl rollout restart` sets
CONTAINER = "node"  # the one container of every pod


def _dns_label(text: str, max_len: int = 63) -> str:
    s = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    s = re.sub(r"-{2,}", "-", s)
    return s[:max_len].rstrip("-")


def _with_hash(text: str, clean: str, max_len: int) -> str:
    """``clean`` if it is ``text`` unchanged and fits, else a shortened form with a hash suffix,
    so two different names never map to the same object."""
    if clean == text and len(clean) <= max_len:
        return clean
    digest = hashlib.sha256(text.encode()).hexdigest()[:6]
    return f"{clean[: max_len - 7].rstrip('-')}-{digest}"


def object_name(node: str) -> str:
    """A node's Deployment/Service/label name: a DNS-1035 label (Services must start with a letter)."""
    clean = _dns_label(node, 63) or "node"
    if not clean[0].isalpha():
        clean = ("n-" + clean)[:63]
    return _with_hash(node, clean, 63)


def namespace_name(options: BackendOptions, topology: Topology) -> str:
    """``bannou-RUNID-PRESET-WORKER`` as a DNS-1123 label (hash-suffixed when it had to change)."""
    worker = options.worker or os.environ.get("PYTEST_XDIST_WORKER", "") or "main"
    raw = f"bannou-{options.run_id}-{topology.preset}-{worker}"
    return _with_hash(raw, _dns_label(raw, 63), 63)


def label_value(value: str) -> str:
    """A valid label value (63 chars of ``[A-Za-z0-9._-]``, alphanumeric at both ends)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", value)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", s)


def resource_labels(
    options: BackendOptions, topology: Topology | None, node: str | None = None
) -> dict[str, str]:
    labels = {k: label_value(v) for k, v in _docker.resource_labels(options, topology, "kubernetes").items()}
    if node is not None:
        labels[LABEL_NODE] = object_name(node)
    return labels


def selector(options: BackendOptions, node: str) -> dict[str, str]:
    """Pod selector of a node's Deployment; immutable, so it holds neither preset nor hash."""
    return {LABEL_RUN_ID: label_value(options.run_id), LABEL_NODE: object_name(node)}
