"""Readiness: probes behind one protocol and one wait with a deadline.

Names are re-exported lazily (PEP 562) so that importing one submodule never imports
the others: the package stays free of import circles."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CLOSE_GRACE": "probes",
    "CommandProbe": "probes",
    "FAST_POLL": "wait",
    "HeartbeatProbe": "probes",
    "HeartbeatSource": "probes",
    "HttpProbe": "probes",
    "LOG_TAIL": "wait",
    "LogProbe": "probes",
    "Probe": "probes",
    "ProbeFactory": "probes",
    "ProbeResult": "probes",
    "ProcessProbe": "probes",
    "STATUS_POLL": "wait",
    "TcpProbe": "probes",
    "poll_until": "wait",
    "probe_for": "probes",
    "register_probe": "probes",
    "wait_ready": "wait",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
