"""``--bannou-matrix`` in a CI step: a collection error or a usage error fails the step loudly
(non-zero exit, the reason on stderr, nothing on stdout), also with ``-p no:terminal``, where
pytest itself reports nothing (issue 16 point 5)."""

from __future__ import annotations

import pytest

GOOD = """
import pytest

@pytest.mark.preset("alpha")
def test_env(bannou_env):
    pass
"""


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "no-terminal"])
def test_a_collection_error_fails_the_matrix_on_stderr(bannou_pytester, terminal):
    bannou_pytester.pytester.makepyfile(test_good=GOOD, test_bad="import module_that_is_not_there\n")
    args = ["--bannou-matrix", *([] if terminal else ["-p", "no:terminal"])]
    result = bannou_pytester.run_subprocess(*args)
    assert result.ret != 0
    err = result.stderr.str()
    assert "--bannou-matrix: 1 error during collection, no matrix printed" in err
    assert '{"include"' not in result.stdout.str()
    if not terminal:  # pytest printed nothing: the plugin names the file and the error
        assert result.stdout.str().strip() == ""
        assert "test_bad.py" in err and "module_that_is_not_there" in err


def test_an_unknown_preset_marker_fails_the_matrix_on_stderr(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        test_unknown="""
        import pytest

        @pytest.mark.preset("no-such-preset")
        def test_x(bannou_env):
            pass
        """
    )
    result = bannou_pytester.run_subprocess("--bannou-matrix", "-p", "no:terminal")
    assert result.ret != 0
    assert result.stdout.str().strip() == ""
    assert "unknown preset 'no-such-preset'" in result.stderr.str()


def test_an_unknown_preset_option_is_a_usage_error_on_stderr(bannou_pytester):
    bannou_pytester.pytester.makepyfile(test_good=GOOD)
    result = bannou_pytester.run_subprocess("--bannou-matrix", "-p", "no:terminal", "--bannou-preset=nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stdout.str().strip() == ""
    assert "unknown preset 'nope'" in result.stderr.str()


def test_a_good_suite_still_prints_only_the_matrix(bannou_pytester):
    bannou_pytester.pytester.makepyfile(test_good=GOOD)
    result = bannou_pytester.run_subprocess("--bannou-matrix", "-p", "no:terminal")
    assert result.ret == 0, result.stderr.str()
    assert result.stdout.str().strip() == (
        '{"include": [{"preset": "alpha", "backends": [], "tests": 1, "backend": "local"}]}'
    )
    assert result.stderr.str().strip() == ""
