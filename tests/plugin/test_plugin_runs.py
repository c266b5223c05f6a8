"""The runs root inside a pytest session: a runs root this user cannot trust stops the deploy
with the message that says what to do, never an INTERNALERROR, and sessions that deploy
nothing do not care."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

USES_ENV = """
import pytest

@pytest.mark.preset("alpha")
def test_1(bannou_env):
    pass
"""


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    base = tmp_path / "tmp"
    base.mkdir()
    monkeypatch.setenv("TMPDIR", str(base))
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    monkeypatch.delenv("BANNOU_LOCAL_STATE_DIR", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    return base / f"pytest-bannou-{os.getuid()}"


def test_a_world_writable_runs_root_stops_the_deploy_with_what_to_do(bannou_pytester, root):
    root.mkdir()
    root.chmod(0o777)
    bannou_pytester.pytester.makepyfile(USES_ENV)
    result = bannou_pytester.run_subprocess(timeout=120)
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, out
    result.stderr.fnmatch_lines(
        [f"ERROR: runs directory {root} is writable by others*chmod 700 {root}*TMPDIR*"]
    )
    assert "INTERNALERROR" not in out and "Traceback" not in out
    assert stat.S_IMODE(root.stat().st_mode) == 0o777
    assert list(root.iterdir()) == []  # nothing written into it


def test_a_session_that_deploys_nothing_does_not_need_the_runs_root(bannou_pytester, root):
    root.mkdir()
    root.chmod(0o777)
    bannou_pytester.pytester.makepyfile("def test_plain():\n    pass\n")
    result = bannou_pytester.run_subprocess(timeout=120)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()


def test_the_run_directory_of_a_session_is_private(bannou_pytester, root):
    bannou_pytester.pytester.makepyfile(
        USES_ENV
        + """

def test_2(bannou_env):
    import os, stat
    from pytest_bannou.environment import RUN_INFO
    d = bannou_env._manager.options.workdir
    print("MODES", oct(stat.S_IMODE(os.stat(d.parent).st_mode)), oct(stat.S_IMODE(os.stat(d).st_mode)),
          oct(stat.S_IMODE(os.stat(d / RUN_INFO).st_mode)))
"""
    )
    result = bannou_pytester.run_subprocess("-s", "--bannou-preset=alpha", timeout=180)
    result.stdout.fnmatch_lines(["*MODES 0o700 0o700 0o600*"])
    assert result.ret == 0
