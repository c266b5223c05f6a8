"""Resolved topologies: the model a backend receives, the diff between two, and bannou's facts.

Names are re-exported lazily (PEP 562) so that importing one submodule never imports
the others: the package stays free of import circles."""

from __future__ import annotations

from .._support.lazy import lazy_exports

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

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
