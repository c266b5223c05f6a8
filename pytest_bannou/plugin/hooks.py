"""Hooks pytest-bannou adds to pytest (registered with ``pluginmanager.add_hookspecs``).

Implement them in a ``conftest.py`` or a plugin, like any pytest hook. No pytest import: the
specs are plain functions marked with pluggy's marker for the "pytest" project.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("pytest")


@hookspec
def pytest_bannou_configure_backend(config: Any, options: Any) -> None:
    """Called once per session before the backend is created, with its ``BackendOptions``
    (mutable dataclass): set ``options.extra``, ``options.local_command`` ... here."""


@hookspec
def pytest_bannou_environment_ready(environment: Any) -> None:
    """Called after an environment was deployed (or transitioned to) and every node is ready."""


@hookspec
def pytest_bannou_before_teardown(environment: Any) -> None:
    """Called before an environment is torn down (session end, full transition, failed deploy);
    the environment is still reachable: collect logs or state here."""


@hookspec
def pytest_bannou_plan(plan: Any) -> None:
    """Called after collection with the ``scheduling.Plan`` the session will follow."""
