"""Batching: group tests by environment and order the groups by transition cost.

Names are re-exported lazily (PEP 562) so that importing one submodule never imports
the others: the package stays free of import circles."""

from __future__ import annotations

from .._support.lazy import lazy_exports

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

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
