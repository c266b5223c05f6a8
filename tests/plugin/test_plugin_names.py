"""Issue 14 point 3: a name that is no node, app id or bannou service is an error, never the
main node (``bannou_http``; the ``Environment`` calls are in tests/test_environment.py)."""

from __future__ import annotations


def test_bannou_http_of_an_unknown_name_is_an_error(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        """
import pytest
from pytest_bannou.errors import DeployError

pytestmark = pytest.mark.preset("beta")


def test_names(bannou_env, bannou_http):
    with pytest.raises(DeployError) as err:
        bannou_http("nosuch")
    assert "preset 'beta': no node hosts 'nosuch' (not a node, app id or bannou service)" in err.value.message
    assert "nodes: main, authn" in err.value.message
    with pytest.raises(DeployError):
        bannou_http("nosuch", timeout=3)
    assert str(bannou_http("auth").base_url).rstrip("/") == bannou_env.url("authn")
    assert str(bannou_http("character").base_url).rstrip("/") == bannou_env.url("main")
    assert bannou_http("auth").get("/health").json()["appId"] == "authn"


def test_an_unknown_name_fails_the_test_with_one_message(bannou_env):
    bannou_env.restart("mian")
"""
    )
    result = bannou_pytester.run_subprocess("-p", "no:randomly", timeout=300)
    result.assert_outcomes(passed=1, failed=1)
    message = "preset 'beta': no node hosts 'mian' (not a node, app id or bannou service; did you mean 'main'"
    result.stdout.fnmatch_lines([f"*DeployError: {message}*"])
