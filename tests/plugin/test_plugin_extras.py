"""Optional dependencies are asked for by their extra: shared mode without ``filelock`` (the
``xdist`` extra) is one usage error naming it, before anything is deployed (issue 16 point 2)."""

from __future__ import annotations

import pytest

# conftest of the inner run: filelock cannot be imported there (sys.modules entry None)
NO_FILELOCK = """
import sys

sys.modules["filelock"] = None
"""


def test_shared_mode_without_filelock_names_the_xdist_extra(bannou_pytester):
    pytest.importorskip("xdist", reason="pip install 'pytest-bannou[xdist]'")
    bannou_pytester.pytester.makeconftest(NO_FILELOCK)
    bannou_pytester.pytester.makepyfile(
        test_shared="""
        import pytest

        @pytest.mark.preset("alpha")
        def test_env(bannou_env):
            pass
        """
    )
    result = bannou_pytester.run_subprocess("-n", "1", "--bannou-share=session")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    err = result.stderr.str()
    assert "--bannou-share=session needs filelock" in err
    assert "pip install 'pytest-bannou[xdist]'" in err
    assert "Traceback" not in err and "INTERNALERROR" not in result.stdout.str() + err
    assert "bannou: deploying" not in result.stdout.str()
