"""Readiness: probes behind one protocol and one wait with a deadline.

Names are re-exported lazily (PEP 562) so that importing one submodule never imports
the others: the package stays free of import circles."""

from __future__ import annotations

from .._support.lazy import lazy_exports

_EXPORTS = {
    "CLOSE_GRACE": "probes",
    "CommandProbe": "probes",
    "FAST_POLL": "wait",
    "HeartbeatProbe": "probes",
    "HeartbeatSource": "probes",
    "HttpProbe": "probes",
    "LOG_TAIL": "wait",
    "LogProbe": "probes",
    "MysqlProbe": "probes",
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

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
