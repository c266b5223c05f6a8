"""Deselection, batching order and the plan: what is deployed, and when."""

from __future__ import annotations

import json

import pytest

from tests.support.bannou_pytester import deploy_lines

SUITE = """
import pytest

@pytest.mark.preset("alpha")
def test_a1(bannou_env):
    assert bannou_env.preset == "alpha"

@pytest.mark.preset("beta")
@pytest.mark.slow
def test_b1(bannou_env):
    assert bannou_env.preset == "beta"

def test_plain():
    pass

@pytest.mark.preset("alpha")
def test_a2(bannou_env):
    assert bannou_env.preset == "alpha"

@pytest.mark.preset("beta")
@pytest.mark.slow
def test_b2(bannou_env):
    assert bannou_env.preset == "beta"
"""


@pytest.fixture
def suite(bannou_pytester):
    bannou_pytester.pytester.makeini("[pytest]\nmarkers =\n    slow: slow\n")
    bannou_pytester.pytester.makepyfile(test_suite=SUITE)
    return bannou_pytester


def _plan(result: pytest.RunResult) -> dict:
    text = result.stdout.str()
    return json.loads(text[text.index("{") : text.rindex("}") + 1])


def test_batched_run_deploys_each_preset_once(suite):
    result = suite.run("-v")
    result.assert_outcomes(passed=5)
    assert [line.split(":")[1].strip() for line in deploy_lines(result)] == [
        "deploying alpha on local",
        "transition to beta",
    ]
    # alpha's tests together, then beta's; the plain test keeps its place
    result.stdout.fnmatch_lines(
        [
            "*::test_a1 PASSED*",
            "*::test_a2 PASSED*",
            "*::test_plain PASSED*",
            "*::test_b1 PASSED*",
            "*::test_b2 PASSED*",
        ]
    )


def test_no_batch_keeps_pytest_order_and_switches_more(suite):
    result = suite.run("-v", "--bannou-no-batch")
    result.assert_outcomes(passed=5)
    assert len(deploy_lines(result)) == 4  # alpha, beta, alpha, beta
    result.stdout.fnmatch_lines(
        [
            "*::test_a1 PASSED*",
            "*::test_b1 PASSED*",
            "*::test_plain PASSED*",
            "*::test_a2 PASSED*",
            "*::test_b2 PASSED*",
        ]
    )


@pytest.mark.parametrize(
    "selection",
    [
        ("-k", "not test_b"),
        ("-m", "not slow"),
        ("--deselect", "test_suite.py::test_b1", "--deselect", "test_suite.py::test_b2"),
        ("--bannou-preset", "alpha"),
    ],
    ids=["-k", "-m", "--deselect", "--bannou-preset"],
)
def test_a_preset_without_selected_tests_is_never_deployed(suite, selection):
    plan = _plan(suite.run("--bannou-plan=json", *selection))
    assert [g["env"] for g in plan["groups"]] == ["alpha"]
    result = suite.run(*selection)
    result.assert_outcomes(passed=3, deselected=2)
    assert [line.split(" on ")[0] for line in deploy_lines(result)] == ["bannou: deploying alpha"]
    assert "beta" not in "\n".join(deploy_lines(result))


def test_last_failed_respected(suite):
    suite.pytester.makepyfile(
        test_suite=SUITE.replace(
            'assert bannou_env.preset == "alpha"\n\n@pytest.mark.preset("beta")',
            'assert False\n\n@pytest.mark.preset("beta")',
            1,
        )
    )
    first = suite.pytester.runpytest(*suite.args()[:1])
    first.assert_outcomes(passed=4, failed=1)
    result = suite.pytester.runpytest(*suite.args()[:1], "--lf", "--bannou-plan=json")
    plan = _plan(result)
    assert [g["env"] for g in plan["groups"]] == ["alpha"]
    assert plan["order"] == ["test_suite.py::test_a1"]


def test_plan_text_deploys_nothing(suite):
    result = suite.run("--bannou-plan")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "bannou plan: 5 tests, 2 environments, batched by environment",
            "1. alpha on local (1 node, 2 tests): start main",
            "2. beta on local (2 nodes, 2 tests): start authn",
            "teardown: stop main, authn",
            "*no environment*1*",
            "deploys: 2, node starts: 2, *",
        ]
    )
    assert not deploy_lines(result)
    assert "passed" not in result.stdout.str()


def test_plan_json_deploys_nothing_and_matches_no_batch(suite):
    plan = _plan(suite.run("--bannou-plan=json"))
    assert plan["deploys"] == 2
    assert plan["order"][:3] == [
        "test_suite.py::test_a1",
        "test_suite.py::test_a2",
        "test_suite.py::test_plain",
    ]
    unbatched = _plan(suite.run("--bannou-plan=json", "--bannou-no-batch"))
    assert unbatched["deploys"] == 4
    assert unbatched["batched"] is False


def test_plan_with_no_tests_exits_zero(bannou_pytester):
    bannou_pytester.pytester.makepyfile("def helper():\n    pass\n")
    result = bannou_pytester.run("--bannou-plan")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["bannou plan: 0 tests, 0 environments*"])


def test_plan_hook_receives_the_plan(suite):
    suite.pytester.makeconftest(
        """
        def pytest_bannou_plan(plan):
            print("HOOK deploys", plan.deploys, "order", len(plan.order))
        """
    )
    result = suite.run("--bannou-plan", "-s")
    result.stdout.fnmatch_lines(["HOOK deploys 2 order 5"])


def test_tests_without_environment_are_not_delayed(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        def test_first_plain():
            pass

        @pytest.mark.preset("alpha")
        def test_env(bannou_env):
            pass

        @pytest.mark.preset("gamma")
        def test_marked_but_no_environment(bannou_preset):
            assert bannou_preset == "gamma"
        """
    )
    result = bannou_pytester.run("-v")
    result.assert_outcomes(passed=3)
    out = result.stdout.str()
    # the plain test ran before anything was deployed; gamma is never deployed
    assert out.index("test_first_plain PASSED") < out.index("bannou: deploying alpha")
    assert "gamma on local" not in out and "transition to gamma" not in out


def test_plan_with_xdist_is_computed_in_the_main_process(suite):
    pytest.importorskip("xdist", reason="pip install 'pytest-bannou[xdist]'")
    result = suite.run("--bannou-plan", "-n", "2")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["bannou plan: 5 tests, 2 environments, batched by environment"])
    assert not deploy_lines(result)


def test_summary_with_xdist_merges_the_workers_records(suite):
    pytest.importorskip("xdist", reason="pip install 'pytest-bannou[xdist]'")
    result = suite.run("-n", "2")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(
        [
            "*bannou environments*",
            "env * passed * failed *",
            "alpha * local * 2 * 0 * 0 * 0 *",
            "beta * local * 2 * 0 * 0 * 0 *",
        ]
    )


def test_batching_starts_from_the_order_other_plugins_gave(suite):
    # a reordering plugin (pytest-randomly, --ff, a conftest) runs before the plugin's batching:
    # its order is where the plan starts, so beta, first after the reversal, is deployed first
    suite.pytester.makeconftest(
        """
        import pytest

        @pytest.hookimpl(tryfirst=True)
        def pytest_collection_modifyitems(items):
            items.reverse()
        """
    )
    result = suite.run("-v")
    result.assert_outcomes(passed=5)
    assert [line.split(":")[1].strip() for line in deploy_lines(result)] == [
        "deploying beta on local",
        "transition to alpha",
    ]
    result.stdout.fnmatch_lines(["*::test_b2 PASSED*", "*::test_b1 PASSED*", "*::test_a2 PASSED*"])
