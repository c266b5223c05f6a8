"""The local backend: every node replica is a process group on this machine.

Names are re-exported lazily (PEP 562) so that importing one submodule never imports
the others: the package stays free of import circles."""

from __future__ import annotations

from ..._support.lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_GRACE": "state",
    "HOST": "processes",
    "INSTALL_HINT": "infrastructure",
    "KILL_WAIT": "processes",
    "LocalBackend": "backend",
    "REFERENCE_COMMAND": "backend",
    "RUN_ID_ENV": "processes",
    "SESSION_ENV": "processes",
    "STATE_DIR_ENV": "state",
    "WITH_EPMD": "infrastructure",
    "state_index_dir": "state",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
