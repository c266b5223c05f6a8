"""Batching: group tests by environment and order the groups by transition cost.

Names are re-exported lazily (PEP 562) so that importing one submodule never imports
the others: the package stays free of import circles."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Plan": "plan",
    "PlanGroup": "plan",
    "PlanItem": "plan",
    "cost_of": "order",
    "greedy_order": "order",
    "make_plan": "plan",
    "optimal_order": "order",
    "order_environments": "order",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
