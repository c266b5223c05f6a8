"""One instance of the environment fixtures per environment, for fixtures of any scope.

``bannou_env``, ``bannou_http`` and ``bannou_preset`` are session-scoped fixtures that depend on
the hidden fixture ``_bannou_key``, which every test using them gets as an indirect,
session-scoped parameter (the environment key; its id is hidden for single-environment tests, so
node ids do not change). pytest then keeps one instance per environment: when the next test
needs another environment, pytest finishes ``_bannou_key`` and with it everything that depends
on it (the environment fixtures and the user's class/module/package/session fixtures built on
them), before the plugin moves the environment.

``EnvFixtures`` is the plugin's side of that: where pytest does not see the switch (a tester
item moving the environment, pytest older than 8.4 without hidden parameter ids, the end of an
interrupted session), the plugin finishes the fixtures of the old environment itself, before
the environment goes away.
"""

from __future__ import annotations

from typing import Any

import pytest

KEY_FIXTURE = "_bannou_key"
#: pytest >= 8.4: a parameter that does not show in the test id (None on older pytest)
HIDDEN_PARAM: Any = getattr(pytest, "HIDDEN_PARAM", None)


class EnvFixtures:
    """The environment whose fixtures are alive, and how to finish them early."""

    def __init__(self) -> None:
        self.key: str | None = None
        self._request: Any = None  # the SubRequest of ``_bannou_key`` that is alive

    def opened(self, key: str, request: pytest.FixtureRequest) -> None:
        self.key, self._request = key, request

    def closed(self, request: pytest.FixtureRequest) -> None:
        if self._request is request:
            self.key, self._request = None, None

    def close_unless(self, key: str | None) -> None:
        """Finish the fixtures of another environment than ``key`` (None: of any)."""
        if self._request is not None and self.key != key:
            self.close()

    def close(self) -> None:
        """Finish ``_bannou_key`` and every fixture that depends on it (pytest runs their
        finalizers, dependents first), as pytest does when a parameter changes."""
        request, self._request, self.key = self._request, None, None
        if request is not None:
            request._fixturedef.finish(request)  # pytest has no public call for this
