"""Fixtures of any scope on an environment: one instance per environment, torn down before it
moves (issue 14 point 2). Real local processes; every event is written to a file in order."""

from __future__ import annotations

import pytest

from tests.support.bannou_pytester import deploy_lines

CONFTEST = """
import os
import pytest

def log(*words):
    with open(os.environ["EVENTS"], "a") as f:
        f.write(" ".join(str(w) for w in words) + "\\n")

def pytest_bannou_environment_ready(environment):
    log("ready", environment.key)

def pytest_bannou_before_teardown(environment):
    log("env-teardown", environment.key)

@pytest.fixture(scope="session")
def seeded(bannou_http, bannou_env, bannou_preset):
    assert bannou_http.get("/health").status_code == 200
    log("setup session", bannou_env.key, bannou_preset)
    yield bannou_env.key
    # still the environment it was made for, still serving
    log("teardown session", bannou_env.key, bannou_env.active, bannou_http.get("/health").status_code)
"""

MODULE = """
import pytest
from conftest import log

pytestmark = pytest.mark.preset({presets})

@pytest.fixture(scope="module")
def client(bannou_http, bannou_env):
    log("setup module {name}", bannou_env.key)
    yield bannou_env.key
    log("teardown module {name}", bannou_env.key, bannou_env.active, bannou_http.get("/health").status_code)

def test_first(client, seeded, bannou_env, bannou_preset):
    assert client == seeded == bannou_env.key == bannou_preset

def test_second(client, seeded, bannou_env):
    assert client == seeded == bannou_env.key
"""


@pytest.fixture
def suite(bannou_pytester, monkeypatch):
    events = bannou_pytester.pytester.path / "events.txt"
    monkeypatch.setenv("EVENTS", str(events))
    bannou_pytester.pytester.makeconftest(CONFTEST)
    # test_one runs against both presets: its module fixture must change with the environment
    # inside the module; test_two (beta only) follows the beta tests of test_one
    bannou_pytester.pytester.makepyfile(
        test_one=MODULE.format(presets='"alpha", "beta"', name="one"),
        test_two=MODULE.format(presets='"beta"', name="two"),
    )
    bannou_pytester.events = lambda: events.read_text().splitlines()
    return bannou_pytester


def test_broader_fixtures_get_one_instance_per_environment(suite):
    result = suite.run("-v")
    result.assert_outcomes(passed=6)
    assert "ScopeMismatch" not in result.stdout.str()
    assert len(deploy_lines(result)) == 2  # still one deploy per preset
    # node ids are unchanged: only a test of several presets is parametrized
    result.stdout.fnmatch_lines(
        ["*test_one.py::test_first[[]alpha[]] PASSED*", "*test_two.py::test_first PASSED*"]
    )
    events = suite.events()
    assert events == [
        "ready alpha",
        "setup session alpha alpha",
        "setup module one alpha",
        # both before the environment moves to beta (a fixture that depends on another one
        # still ends first: pytest's own finalizer order)
        "teardown session alpha True 200",
        "teardown module one alpha True 200",
        "ready beta",
        "setup session beta beta",
        "setup module one beta",
        "teardown module one beta True 200",
        "setup module two beta",
        "teardown module two beta True 200",
        "teardown session beta True 200",  # before the environment is torn down
        "env-teardown beta",
    ]


def test_an_interrupted_run_still_ends_the_fixtures_first(suite):
    suite.pytester.makepyfile(
        test_one="""
        import pytest

        @pytest.mark.preset("alpha")
        def test_fails(seeded):
            assert False

        @pytest.mark.preset("alpha")
        def test_never_runs(seeded):
            pass
        """,
        test_two="",
    )
    result = suite.run("-x")
    result.assert_outcomes(failed=1)
    assert suite.events() == [
        "ready alpha",
        "setup session alpha alpha",
        "teardown session alpha True 200",
        "env-teardown alpha",
    ]


def test_a_tester_item_moving_the_environment_ends_the_fixtures_first(suite):
    """A tester item is no fixture user: the plugin itself ends the old environment's fixtures."""
    (suite.presets / "beta.yaml").write_text(
        (suite.presets / "beta.yaml").read_text()
        + "testers:\n  - name: ok\n    command: [python, -c, 'print(1)']\n    format: exit-code\n"
    )
    suite.pytester.makepyfile(
        test_one="""
        import pytest

        @pytest.mark.preset("alpha")
        def test_alpha(seeded):
            pass
        """,
        test_two="",
    )
    result = suite.run("--bannou-preset=alpha", "--bannou-preset=beta", "-v")
    result.assert_outcomes(passed=3)  # the test, the tester item and its one case
    events = suite.events()
    assert events.index("teardown session alpha True 200") < events.index("ready beta")
