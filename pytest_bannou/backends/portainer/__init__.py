"""The Portainer backend: one standalone compose stack per environment.

Names are re-exported lazily (PEP 562) so that importing one submodule never imports
the others: the package stays free of import circles."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CONFIG_HINT": "settings",
    "DOCKER_ENDPOINT_TYPES": "client",
    "ENV_PREFIX": "settings",
    "LABEL_SPEC_HASH": "backend",
    "PortainerBackend": "backend",
    "PortainerClient": "client",
    "PortainerError": "client",
    "PortainerSettings": "settings",
    "SNAPSHOT_AGE": "backend",
    "STACK_PREFIX": "backend",
    "Secrets": "settings",
    "demux": "client",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
