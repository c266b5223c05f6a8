"""The ``preset`` marker: placement, closest wins, parametrization, validation."""

from __future__ import annotations

import pytest


def test_marker_is_registered_and_strict_markers_clean(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.preset("alpha")
        def test_x():
            pass
        """
    )
    result = bannou_pytester.run("--strict-markers")
    result.assert_outcomes(passed=1)
    result = bannou_pytester.pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.preset(*names, environment=None, replicas=None): *"])


def test_function_class_and_module_markers_closest_wins(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.preset("alpha")

        def test_module_level(bannou_preset):
            assert bannou_preset == "alpha"

        @pytest.mark.preset("gamma")
        def test_function_level(bannou_preset):
            assert bannou_preset == "gamma"

        @pytest.mark.preset("beta")
        class TestClass:
            def test_class_level(self, bannou_preset):
                assert bannou_preset == "beta"

            @pytest.mark.preset("gamma")
            def test_method_overrides_class(self, bannou_preset):
                assert bannou_preset == "gamma"
        """
    )
    result = bannou_pytester.run("-v")
    result.assert_outcomes(passed=4)


def test_unmarked_tests_use_the_default_preset_ini(bannou_pytester):
    bannou_pytester.pytester.makeini("[pytest]\nbannou_default_preset = gamma\n")
    bannou_pytester.pytester.makepyfile(
        """
        def test_default(bannou_preset):
            assert bannou_preset == "gamma"
        """
    )
    bannou_pytester.run().assert_outcomes(passed=1)


def test_several_names_parametrize_with_preset_ids(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.preset("alpha", "beta")
        def test_x(bannou_preset):
            assert bannou_preset in ("alpha", "beta")

        @pytest.mark.preset("alpha", "gamma")
        def test_no_fixture_at_all():
            pass

        @pytest.mark.preset("beta")
        def test_single(bannou_preset):
            assert bannou_preset == "beta"
        """
    )
    result = bannou_pytester.run("--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            "test_several_names_parametrize_with_preset_ids.py::test_x[[]alpha[]]",
            "test_several_names_parametrize_with_preset_ids.py::test_x[[]beta[]]",
            "test_several_names_parametrize_with_preset_ids.py::test_no_fixture_at_all[[]alpha[]]",
            "test_several_names_parametrize_with_preset_ids.py::test_no_fixture_at_all[[]gamma[]]",
            "test_several_names_parametrize_with_preset_ids.py::test_single",
        ]
    )
    bannou_pytester.run().assert_outcomes(passed=5)


def test_several_cli_presets_parametrize_unmarked_environment_tests(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        """
        def test_env(bannou_preset, bannou_env):
            assert bannou_env.preset == bannou_preset

        def test_plain():
            pass
        """
    )
    result = bannou_pytester.run("--collect-only", "-q", "--bannou-preset=alpha", "--bannou-preset=gamma")
    result.stdout.fnmatch_lines(
        [
            "*::test_env[[]alpha[]]",
            "*::test_env[[]gamma[]]",
            "*::test_plain",
        ]
    )


def test_unknown_preset_is_a_collection_error_listing_known_presets(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.preset("alhpa")
        def test_typo():
            pass

        def test_fine():
            pass
        """
    )
    result = bannou_pytester.run()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "*::test_typo: unknown preset 'alhpa'; known presets: alpha, beta, broken, gamma, *monolith*",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert "def test_typo" not in result.stdout.str()


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("preset()", "needs at least one preset name"),
        ("preset(3)", "preset names are strings, got 3"),
        ("preset('alpha', envirnoment={})", "got an unexpected keyword argument 'envirnoment'"),
        ("preset('alpha', environment=['A=1'])", "must be a mapping VAR -> value"),
        ("preset('alpha', replicas={'main': -1})", "is not node -> count >= 0"),
        ("preset('alpha', 'alpha')", "names a preset twice"),
        ("preset('x' * 300)", "is 300 characters long; a preset name is a file name of at most"),
    ],
)
def test_bad_marker_arguments_are_collection_errors_naming_the_test(bannou_pytester, marker, message):
    bannou_pytester.pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.{marker}
        def test_bad():
            pass
        """
    )
    result = bannou_pytester.run()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    out = result.stdout.str()
    assert "::test_bad: " in out
    assert message in out
    assert "Traceback" not in out


def test_bad_preset_file_is_a_collection_error_with_file_and_line(bannou_pytester):
    (bannou_pytester.presets / "bad.yaml").write_text(
        "name: bad\ntopology:\n  nodes:\n    - name: x\n      replcas: 2\n"
    )
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.preset("bad")
        def test_bad_file():
            pass
        """
    )
    result = bannou_pytester.run()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*::test_bad_file: *bad.yaml:5:*replcas*"])


def test_keyword_overrides_make_a_derived_environment(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.preset("beta", environment={"FOO": "1"}, replicas={"authn": 2})
        def test_derived(bannou_env):
            assert bannou_env.key == "beta[env:FOO=1;replicas:authn=2]"
            assert bannou_env.preset == "beta"
            assert bannou_env.topology.node("authn").replicas == 2
            assert bannou_env.topology.node("main").environment["FOO"] == "1"
            assert len([s for s in bannou_env.status() if s.node == "authn"]) == 2
        """
    )
    result = bannou_pytester.run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["bannou: deploying beta[[]env:FOO=1;replicas:authn=2[]] on local: 2 nodes*"])


def test_override_naming_an_unknown_node_errors_the_tests_of_its_marker(bannou_pytester):
    # issue 14 point 7: no longer a usage error that stops the session (the others run:
    # test_plugin_output.py::test_a_bad_replicas_override_fails_only_the_tests_of_its_marker)
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.preset("alpha", replicas={"nosuch": 2})
        def test_derived(bannou_env):
            pass
        """
    )
    result = bannou_pytester.run()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(errors=1)
    assert "nosuch" in result.stdout.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_one_function_in_two_classes_gets_each_class_marker(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        def _check(self, bannou_preset):
            assert bannou_preset == self.expected

        @pytest.mark.preset("alpha")
        class TestA:
            expected = "alpha"
            test_which = _check

        @pytest.mark.preset("gamma")
        class TestG:
            expected = "gamma"
            test_which = _check
        """
    )
    bannou_pytester.run().assert_outcomes(passed=2)


def test_marker_added_by_a_collection_hook_is_seen(bannou_pytester):
    bannou_pytester.pytester.makeconftest(
        """
        import pytest

        @pytest.hookimpl(tryfirst=True)
        def pytest_collection_modifyitems(items):
            for item in items:
                if item.name == "test_late":
                    item.add_marker(pytest.mark.preset("gamma"))
        """
    )
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.preset("alpha")

        def test_late(bannou_preset):
            assert bannou_preset == "gamma"

        def test_module(bannou_preset):
            assert bannou_preset == "alpha"
        """
    )
    bannou_pytester.run().assert_outcomes(passed=2)
