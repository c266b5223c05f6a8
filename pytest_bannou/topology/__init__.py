"""Resolved topologies: the model a backend receives, the diff between two, and bannou's facts.

Names are re-exported lazily (PEP 562) so that importing one submodule never imports
the others: the package stays free of import circles."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ALWAYS_ON_LAYER": "contract",
    "APP_ID_ENV": "contract",
    "Action": "diff",
    "DEFAULT_APP_ID": "model",
    "HTTP_PORT_IN_CONTAINER": "model",
    "HealthCheck": "model",
    "HealthKind": "model",
    "INFRA_KINDS": "contract",
    "INFRA_PORTS": "contract",
    "LAYERS": "contract",
    "Node": "model",
    "NodeChange": "diff",
    "NodeKind": "model",
    "PRESET_LAYERS": "contract",
    "Resources": "model",
    "SERVICES_ENABLED_ENV": "contract",
    "TesterSpec": "model",
    "Topology": "model",
    "Transition": "diff",
    "UNLISTED_LAYER": "contract",
    "_jsonable": "model",
    "apply": "diff",
    "diff": "diff",
    "infra_node": "model",
    "jsonable": "model",
    "layer_env_name": "contract",
    "service_env_name": "contract",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
