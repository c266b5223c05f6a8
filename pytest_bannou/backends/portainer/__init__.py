"""The Portainer backend: one standalone compose stack per environment.

Names are re-exported lazily (PEP 562) so that importing one submodule never imports
the others: the package stays free of import circles."""

from __future__ import annotations

from ..._support.lazy import lazy_exports

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

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
