"""SIGINT / SIGTERM sent to a pytest run mid-test or mid-deploy leave no process behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_bannou.backends.local.backend import STATE_DIR_ENV, LocalBackend
from tests.support.procs import alive, carrying

MID_TEST = """
import json, os, time, pytest

@pytest.mark.preset("beta", replicas={"authn": 2})
def test_waits(bannou_env):
    state = {"pids": [int(s.id) for s in bannou_env.status()], "run_id": bannou_env.run_id}
    with open("ready.json.tmp", "w") as f:
        json.dump(state, f)
    os.replace("ready.json.tmp", "ready.json")
    time.sleep(120)
"""

MID_DEPLOY = """
import pytest

@pytest.mark.preset("slow")
def test_never_starts(bannou_env):
    pass
"""


def _wait_for(predicate, timeout: float = 90.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the inner pytest run")


def _start(bannou_pytester, monkeypatch, source: str, *args: str) -> tuple[subprocess.Popen, Path]:
    bannou_pytester.pytester.makepyfile(test_sig=source)
    state_dir = bannou_pytester.pytester.mkdir("local-state")
    monkeypatch.setenv(STATE_DIR_ENV, str(state_dir))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", *bannou_pytester.args(*args), "test_sig.py"],
        cwd=bannou_pytester.pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc, state_dir


def _stop(proc: subprocess.Popen) -> None:
    """A test that fails still removes what its inner session started: the session is killed,
    then its nodes (the test's own local state directory lists only them)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
        LocalBackend.clean(None)


def _finish(proc: subprocess.Popen) -> str:
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        LocalBackend.clean(None)
        raise AssertionError(f"inner pytest did not exit after the signal:\n{out}") from None
    return out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_test_tears_everything_down(bannou_pytester, monkeypatch, sig):
    proc, _ = _start(bannou_pytester, monkeypatch, MID_TEST)
    try:
        ready = bannou_pytester.pytester.path / "ready.json"
        _wait_for(lambda: ready.exists() or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()[0]
        state = json.loads(ready.read_text())
        assert len(state["pids"]) == 3 and all(alive(p) for p in state["pids"])
        proc.send_signal(sig)
        out = _finish(proc)
    finally:
        _stop(proc)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "teardown beta" in out
    assert [p for p in state["pids"] if alive(p)] == []
    assert carrying(state["run_id"]) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_deploy_tears_the_half_started_environment_down(bannou_pytester, monkeypatch, sig):
    proc, state_dir = _start(bannou_pytester, monkeypatch, MID_DEPLOY, "--bannou-ready-timeout=100")
    try:
        index = _wait_for(lambda: list(state_dir.glob("*.json")) or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()[0]
        data = _wait_for(lambda: _replicas(index[0]))
        pids = [r["pid"] for r in data["replicas"]]
        assert pids and all(alive(p) for p in pids)
        proc.send_signal(sig)
        out = _finish(proc)
    finally:
        _stop(proc)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert [p for p in pids if alive(p)] == []
    assert carrying(data["run_id"]) == []
    assert list(state_dir.glob("*.json")) == []


def _replicas(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("replicas") else None
