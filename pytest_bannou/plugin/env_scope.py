"""One instance of the environment fixtures per environment, for fixtures of any scope.

``bannou_env``, ``bannou_http`` and ``bannou_preset`` are session-scoped fixtures that depend on
the hidden session fixture ``_bannou_key`` (the environment key of the test being run). It is
not a parameter: pytest would then make an instance per test parameter, and a parameter on every
test was most of the plugin's collection time. Instead ``EnvFixtures`` finishes ``_bannou_key``
before a test of another environment, and pytest with it everything that depends on it (the
environment fixtures and the user's class/module/package/session fixtures built on them),
before the plugin moves the environment; the next test makes them again for its own.

A test marked with several presets is one test per environment: a direct parameter
``ENV_PARAM`` whose ids are the preset names (``test_x[alpha]``, ``test_x[beta]``).
"""

from __future__ import annotations

from typing import Any

import pytest

KEY_FIXTURE = "_bannou_key"
#: the direct parameter of a test marked with several presets (its value: the environment key)
ENV_PARAM = "_bannou_environment"


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
