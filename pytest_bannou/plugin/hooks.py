"""Hooks pytest-bannou adds to pytest (registered with ``pluginmanager.add_hookspecs``).

Implement them in a ``conftest.py`` or a plugin, like any pytest hook. Typed as pytest-xdist's
``newhooks``. Each one is a notification every implementation receives (none is asked for one
answer, so none is ``firstresult``): ``configure_backend`` lets several plugins adjust the same
options, the others report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ..backends.base import BackendOptions
    from ..environment.environment import Environment
    from ..scheduling.plan import Plan


@pytest.hookspec()
def pytest_bannou_configure_backend(config: pytest.Config, options: BackendOptions) -> None:
    """Called once per backend a session uses (usually one; ``--bannou-backend=auto`` may use
    several), before it is created, with its ``BackendOptions`` (mutable dataclass): set
    ``options.extra``, ``options.local_command`` ... here."""


@pytest.hookspec()
def pytest_bannou_environment_ready(environment: Environment) -> None:
    """Called after an environment was deployed (or transitioned to) and every node is ready."""


@pytest.hookspec()
def pytest_bannou_before_teardown(environment: Environment) -> None:
    """Called before an environment is torn down (session end, full transition, failed deploy);
    the environment is still reachable: collect logs or state here."""


@pytest.hookspec()
def pytest_bannou_plan(plan: Plan) -> None:
    """Called after collection with the ``scheduling.Plan`` the session will follow."""


@pytest.hookspec()
def pytest_bannou_environment_failed(environment: Environment, error: str, seconds: float) -> None:
    """Called when an environment failed to deploy (or to be reached by a transition), before
    what was started is torn down: ``error`` says why, ``seconds`` how long the attempt took."""
