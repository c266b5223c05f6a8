"""The pytest-bannou demo: tests against several built-in presets, on real reference nodes.

Run it with ``pytest examples/ -v`` (no Docker, no servers needed: the local backend starts
each node as a process of the reference bannou node). Watch the progress lines: each preset is
deployed once, tests are batched by preset, and the environment is torn down at the end.
"""

from __future__ import annotations

import pytest

CREATED: dict[str, int] = {}  # demo_account instances per environment


@pytest.fixture(scope="module")
def demo_account(bannou_http):
    """Module-scoped on an environment: made once per environment this module's tests run in,
    when the environment first serves one of them, and torn down before that environment is
    moved to the next preset or removed (the environment fixtures are one per environment)."""
    key = bannou_http.env.key
    CREATED[key] = CREATED.get(key, 0) + 1
    response = bannou_http("account").post("/account/create", json={"name": "demo"})
    assert response.status_code == 200
    yield {"env": key, "created": response.json()}
    assert bannou_http.get("/health").status_code == 200  # still up when the fixture ends


def test_plain_unit_test_needs_no_environment():
    """Uses no bannou fixture: never waits for a deployment and keeps its place."""
    assert "auth".upper() == "AUTH"


def test_default_preset_is_monolith(bannou_env, bannou_http):
    """Unmarked: runs in ini ``bannou_default_preset`` (monolith), one node hosting everything."""
    assert bannou_env.preset == "monolith"
    assert bannou_env.nodes == ("bannou",)
    health = bannou_http.get("/health").json()
    assert health["status"] == "healthy"
    assert health["appId"] == "bannou"


@pytest.mark.preset("split-auth")
class TestSplitAuth:
    """split-auth: auth and account on bannou-auth, everything else on bannou-main."""

    def test_auth_is_routed_to_the_auth_node(self, bannou_env, bannou_http):
        auth = bannou_http("auth")
        assert auth.base_url == bannou_env.url("bannou-auth")
        response = auth.post("/auth/login", json={"user": "demo"})
        assert response.status_code == 200

    def test_auth_node_hosts_only_its_services(self, bannou_http):
        response = bannou_http("bannou-auth").post("/game-session/list", json={})
        assert response.status_code == 404
        assert "game-session" in response.text

    def test_other_services_go_to_the_main_node(self, bannou_env, bannou_http):
        assert bannou_http("game-session").base_url == bannou_env.url("bannou-main")
        assert bannou_http("game-session").post("/game-session/list", json={}).status_code == 200


@pytest.mark.preset("monolith", "split-auth")
def test_account_service_answers_in_both_topologies(bannou_preset, bannou_http):
    """Two presets: collected as ``[monolith]`` and ``[split-auth]``, each run in its batch."""
    response = bannou_http("account").post("/account/get", json={"id": 1})
    assert response.status_code == 200, f"{bannou_preset}: {response.text}"


@pytest.mark.preset("monolith", "split-auth")
@pytest.mark.parametrize("attempt", [1, 2])
def test_module_fixture_is_one_per_environment(demo_account, bannou_env, attempt):
    """Each preset sees its own ``demo_account``, made once for all of its tests here."""
    assert demo_account["env"] == bannou_env.key
    assert CREATED[bannou_env.key] == 1


@pytest.mark.preset("test-http")
def test_http_preset_enables_listed_services_only(bannou_http):
    health = bannou_http.get("/health").json()
    assert "auth" in health["services"]
    assert bannou_http.post("/website/status", json={}).status_code == 200


@pytest.mark.preset("monolith", environment={"BANNOU_ENABLE_GAME_FEATURES": "false"})
def test_derived_environment_switches_a_layer_off(bannou_env, bannou_http):
    """Keyword overrides make a derived environment (its own key, reached by a transition)."""
    assert bannou_env.key == "monolith[env:BANNOU_ENABLE_GAME_FEATURES=false]"
    assert bannou_http.post("/behavior/run", json={}).status_code == 404
    assert bannou_http.post("/account/get", json={}).status_code == 200


def test_logs_show_requests(bannou_env, bannou_http):
    bannou_http.get("/health")
    assert bannou_env.logs("bannou", tail=20).strip()
