"""The public fixtures: ``bannou_env``, ``bannou_http`` and ``bannou_preset``.

A test that requests ``bannou_env`` or ``bannou_http`` (directly or through another fixture)
runs in an environment: the first such test of an environment deploys it, the next environment
is reached by a transition. Tests that request neither are never delayed by a deployment.

The three are session-scoped with one instance per environment (``env_scope``), so a fixture of
any scope can build on them: ``@pytest.fixture(scope="module") def client(bannou_http)`` is set
up when the environment first serves a test of that module and torn down before the
environment is moved or removed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from ..environment.environment import Environment
from .env_scope import KEY_FIXTURE
from .session import session_of

if TYPE_CHECKING:  # httpx is imported on first use: collection does not pay for it
    import httpx

DEFAULT_TIMEOUT = 10.0


@pytest.fixture(scope="session", name=KEY_FIXTURE)
def bannou_key(request: pytest.FixtureRequest) -> Iterator[str]:
    """The environment key of the tests being run (hidden: an indirect parameter the plugin
    gives every test that uses an environment fixture). Its instance per key is what makes
    the environment fixtures, and the fixtures built on them, one per environment."""
    bs = session_of(request.config)
    # the test's own key: the parameter is what pytest caches by, but a marker added after
    # parametrization (a collection hook) may name another environment; EnvFixtures compares
    # this key before each test (and stands in where there is no parameter: pytest < 8.4)
    key = bs.item_env(bs.current_item).key
    bs.env_fixtures.opened(key, request)
    try:
        yield key
    finally:
        bs.env_fixtures.closed(request)


@pytest.fixture(scope="session")
def bannou_preset(request: pytest.FixtureRequest, _bannou_key: str) -> str:
    """The preset name of the current test (from its ``preset`` marker, ``--bannou-preset`` or
    ini ``bannou_default_preset``); a test marked with several presets gets each in turn.
    One value per environment: fixtures of any scope may use it."""
    bs = session_of(request.config)
    return bs.item_env(bs.current_item).preset


@pytest.fixture(scope="session")
def bannou_env(request: pytest.FixtureRequest, _bannou_key: str) -> Environment:
    """The environment of the current test, deployed (or transitioned to) on first use.

    ``.preset``, ``.key``, ``.topology``, ``.backend``, ``.nodes``, ``.url(service_or_node,
    port=None)``, ``.endpoint(...)``, ``.logs(node, tail=50)``, ``.status()``,
    ``.restart(node, environment=None)``, ``.scale(node, n)``; with messaging (see README):
    ``.heartbeats()``, ``.should_restart(node)``, ``.update(changes)``,
    ``.rollback(version=None)``, ``.config_version``, ``.config_versions``.
    If the environment cannot be deployed the test errors with one message (no traceback).
    One instance per environment, so fixtures of any scope may use it; every test still finds
    its environment as its preset defines it.
    """
    bs = session_of(request.config)
    return bs.environment_for(bs.current_item)


class BannouHttp:
    """HTTP access to an environment, routed by service.

    - ``bannou_http("auth")`` -> an ``httpx.Client`` whose ``base_url`` is the node hosting the
      ``auth`` service (a node name or app id works too); the same client is returned for the
      same target. One ``BannouHttp`` per environment: its clients (and their cookies) are
      shared by the tests and fixtures of that environment and closed when it is moved or
      removed; a client with settings of its own is ``bannou_http("auth", cookies={})``.
    - ``bannou_http.get("/health")`` (also ``post``, ``put``, ``patch``, ``delete``, ``head``,
      ``options``, ``request``) -> a request to the main node (the one with the default app id).
    - ``bannou_http.client`` -> the main node's client; ``bannou_http.url("auth")`` its base URL.
    """

    def __init__(self, env: Environment, **client_kwargs: Any) -> None:
        self.env = env
        self._defaults = {"timeout": DEFAULT_TIMEOUT, **client_kwargs}
        self._clients: dict[str, httpx.Client] = {}
        self._extra: list[httpx.Client] = []

    def __call__(self, service_or_node: str | None = None, **client_kwargs: Any) -> httpx.Client:
        import httpx

        target = self.env.node_for(service_or_node) if service_or_node else self.env.main_node
        if client_kwargs:  # custom settings: a client of its own, closed with the environment
            client = httpx.Client(base_url=self.env.url(target), **{**self._defaults, **client_kwargs})
            self._extra.append(client)
            return client
        client = self._clients.get(target)
        if client is None:
            client = self._clients[target] = httpx.Client(base_url=self.env.url(target), **self._defaults)
        return client

    @property
    def client(self) -> httpx.Client:
        return self()

    def url(self, service_or_node: str | None = None) -> str:
        return self.env.url(service_or_node)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.post(url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.put(url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.patch(url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.delete(url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.head(url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.options(url, **kwargs)

    def close(self) -> None:
        for client in [*self._clients.values(), *self._extra]:
            client.close()
        self._clients.clear()
        self._extra.clear()


@pytest.fixture(scope="session")
def bannou_http(bannou_env: Environment) -> Iterator[BannouHttp]:
    """HTTP clients routed to the node hosting a service: ``bannou_http("auth").post(...)``;
    ``bannou_http.get("/health")`` goes to the main node. See ``BannouHttp``. One instance per
    environment: fixtures of any scope may use it."""
    http = BannouHttp(bannou_env)
    try:
        yield http
    finally:
        http.close()
