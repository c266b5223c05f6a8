"""Environments: run ids and directories, what a test holds, the manager, live changes,
sharing between workers and the sweep of dead sessions.

Names are re-exported lazily (PEP 562) so that importing one submodule never imports
the others: the package stays free of import circles."""

from __future__ import annotations

from .._support.lazy import lazy_exports

_EXPORTS = {
    "CI_JOB_VARS": "runs",
    "ChangeError": "live",
    "ConfigVersion": "live",
    "DEFAULT_READY_TIMEOUT": "runs",
    "EnvRecord": "record",
    "Environment": "environment",
    "EnvironmentHost": "environment",
    "EnvironmentManager": "manager",
    "History": "live",
    "Progress": "manager",
    "RUN_ID_EXAMPLE": "runs",
    "RUN_ID_PATTERN": "runs",
    "RUN_INFO": "runs",
    "RunIdError": "runs",
    "TopologyChange": "live",
    "change_topology": "live",
    "changed_keys": "live",
    "changed_nodes": "manager",
    "check_run_id": "runs",
    "ensure_run_directory": "runs",
    "format_status": "record",
    "load_history": "live",
    "make_options": "runs",
    "new_run_id": "runs",
    "read_run_info": "runs",
    "resolve_backend": "manager",
    "run_directories": "runs",
    "run_directory": "runs",
    "runs_root": "runs",
    "save_history": "live",
    "write_run_info": "runs",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
