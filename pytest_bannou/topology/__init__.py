"""Resolved topologies: the model a backend receives, the diff between two, and bannou's facts.

Names are re-exported lazily (PEP 562) so that importing one submodule never imports
the others: the package stays free of import circles."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Action": "model",
    "DEFAULT_APP_ID": "model",
    "HTTP_PORT_IN_CONTAINER": "model",
    "HealthCheck": "model",
    "HealthKind": "model",
    "Node": "model",
    "NodeChange": "model",
    "NodeKind": "model",
    "Resources": "model",
    "TesterSpec": "model",
    "Topology": "model",
    "Transition": "model",
    "_jsonable": "model",
    "apply": "model",
    "diff": "model",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
