"""Environments: run ids and directories, what a test holds, the manager, live changes,
sharing between workers and the sweep of dead sessions.

Names are re-exported lazily (PEP 562) so that importing one submodule never imports
the others: the package stays free of import circles."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CI_JOB_VARS": "manager",
    "EnvRecord": "manager",
    "Environment": "manager",
    "EnvironmentManager": "manager",
    "Progress": "manager",
    "RUN_ID_EXAMPLE": "manager",
    "RUN_ID_PATTERN": "manager",
    "RUN_INFO": "manager",
    "RunIdError": "manager",
    "changed_nodes": "manager",
    "check_run_id": "manager",
    "ensure_run_directory": "manager",
    "format_status": "manager",
    "make_options": "manager",
    "new_run_id": "manager",
    "read_run_info": "manager",
    "resolve_backend": "manager",
    "run_directories": "manager",
    "run_directory": "manager",
    "runs_root": "manager",
    "write_run_info": "manager",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
