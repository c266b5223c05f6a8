"""What the terminal says (issue 14, point 7): progress lines under -q, -s and -v; reuse without
keep; where a bad option value came from; an empty ini value; a marker whose overrides cannot be
made; run directories pruned like pytest's basetemp."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

TWO_FILES = {
    "test_one": """
        import pytest

        @pytest.mark.preset("alpha")
        def test_a(bannou_env):
            pass

        @pytest.mark.preset("beta")
        def test_b(bannou_env):
            print("STATUS")  # the first test of beta: right after the transition's line
        """,
    "test_two": """
        import pytest

        @pytest.mark.preset("alpha")
        def test_a(bannou_env):
            pass

        @pytest.mark.preset("beta")
        def test_b(bannou_env):
            pass
        """,
}


@pytest.fixture
def private_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A runs root of this test's own (inner sessions run as subprocesses and inherit TMPDIR)."""
    base = tmp_path / "t"
    base.mkdir()
    monkeypatch.setenv("TMPDIR", str(base))
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    monkeypatch.delenv("BANNOU_LOCAL_STATE_DIR", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    return base / f"pytest-bannou-{os.getuid()}"


def test_quiet_progress_lines_name_no_files(bannou_pytester):
    bannou_pytester.pytester.makepyfile(**TWO_FILES)
    result = bannou_pytester.run("-q")
    assert result.ret == 0, result.stdout.str()
    # pytest -q writes no file names; before, ours put both files' tests under "test_one.py"
    assert not [line for line in result.outlines if line.startswith("test_")], result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "bannou: deploying alpha on local: 1 node ... ready in * s",
            "..",
            "bannou: transition to beta: * ... ready in * s",
            "..*",
        ]
    )


def test_a_progress_line_ends_before_the_test_prints(bannou_pytester):
    bannou_pytester.pytester.makepyfile(**TWO_FILES)
    result = bannou_pytester.run_subprocess("-v", "-s", timeout=180)
    out = result.stdout.str()
    assert result.ret == 0, out
    assert re.search(r"^bannou: transition to beta: .* ready in [0-9.]+ s$", out, re.M), out
    assert "sSTATUS" not in out
    result.stdout.fnmatch_lines(["test_one.py::test_b STATUS", "PASSED*", "test_two.py::test_b PASSED*"])


def test_reuse_without_keep_tears_nothing_down_and_says_it_still_runs(bannou_pytester, private_runs):
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.preset("alpha")
        def test_a(bannou_env):
            pass
        """
    )
    kept = bannou_pytester.run_subprocess("-q", "--bannou-keep", timeout=180)
    out = kept.stdout.str()
    m = re.search(r"bannou-env clean --run-id (\S+) --backend local", out)
    assert kept.ret == 0 and m, out
    try:
        reused = bannou_pytester.run_subprocess("-q", "--bannou-reuse", timeout=180)
        out = reused.stdout.str()
        assert reused.ret == 0, out
        assert "teardown" not in out, out  # before: "teardown environment ... 0.0 s"
        assert f"reused environment alpha is still running (run id {m.group(1)})" in out
        assert "reusing kept environment alpha" in out and "... \n" not in out
    finally:
        clean = ["clean", "--run-id", m.group(1), "--backend", "local"]
        subprocess.run(
            [sys.executable, "-m", "pytest_bannou.cli", *clean],
            capture_output=True,
            timeout=120,
            check=False,
        )


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("env", "ERROR: environment variable BANNOU_PRESET=nope: unknown preset 'nope'*"),
        ("ini", "ERROR: ini key bannou_preset = nope: unknown preset 'nope'*"),
        ("cli", "ERROR: --bannou-preset nope: unknown preset 'nope'*"),
    ],
)
def test_an_unknown_preset_names_where_it_was_given(bannou_pytester, monkeypatch, how, expected):
    bannou_pytester.pytester.makepyfile("def test_plain():\n    pass\n")
    args = []
    if how == "env":
        monkeypatch.setenv("BANNOU_PRESET", "nope")
    elif how == "ini":
        bannou_pytester.pytester.makeini("[pytest]\nbannou_preset = nope\n")
    else:
        args = ["--bannou-preset", "nope"]
    result = bannou_pytester.run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])


def test_an_empty_default_preset_ini_key_is_a_usage_error(bannou_pytester):
    bannou_pytester.pytester.makeini("[pytest]\nbannou_default_preset =\n")
    bannou_pytester.pytester.makepyfile("def test_1(bannou_env):\n    pass\n")
    result = bannou_pytester.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines(["ERROR: ini key bannou_default_preset is empty: give it a value*"])
    assert "deploying" not in result.stdout.str()


def test_a_bad_replicas_override_fails_only_the_tests_of_its_marker(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.preset("alpha", replicas={"nosuch": 2})
        def test_bad(bannou_env):
            pass

        @pytest.mark.preset("alpha")
        def test_good(bannou_env):
            pass

        def test_plain():
            pass
        """
    )
    result = bannou_pytester.run("-rE")
    result.assert_outcomes(passed=2, errors=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(["*ERROR at setup of test_bad*"])
    assert (
        "::test_bad: @pytest.mark.preset('alpha', ...) overrides give environment "
        "alpha[replicas:nosuch=2], which cannot be made: "
    ) in out
    assert "unknown node 'nosuch'" in out and "INTERNALERROR" not in out


def _finished_run(root: Path, run_id: str, age: float) -> Path:
    d = root / run_id
    (d / "local").mkdir(parents=True, mode=0o700)
    (d / "local" / "main.log").write_text("a failed run's log")
    then = time.time() - age
    for p in (d / "local" / "main.log", d / "local", d):
        os.utime(p, (then, then))
    return d


def test_old_finished_run_directories_are_pruned_when_a_session_deploys(bannou_pytester, private_runs):
    private_runs.mkdir(mode=0o700)
    runs = [_finished_run(private_runs, f"bannou-0000000{i}", 3600 * (i + 1)) for i in range(5)]
    kept = _finished_run(private_runs, "bannou-1000000a", 99999)
    (kept / "environment.json").write_text(json.dumps({"kept": True, "run_id": kept.name}))
    bannou_pytester.pytester.makepyfile(
        "def test_1(bannou_env):\n    assert False\n"
    )  # a failed run keeps its logs
    result = bannou_pytester.run_subprocess("-q", "--bannou-preset=alpha", timeout=180)
    assert result.ret == 1, result.stdout.str()
    left = sorted(d.name for d in private_runs.iterdir() if d.name.startswith("bannou-"))
    mine = [n for n in left if n not in {d.name for d in [*runs, kept]}]
    assert len(mine) == 1, left  # this session's own run directory (its test failed)
    assert left == sorted([runs[0].name, runs[1].name, runs[2].name, kept.name, *mine])
