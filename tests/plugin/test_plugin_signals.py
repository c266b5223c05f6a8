"""SIGINT / SIGTERM sent to a pytest run mid-test or mid-deploy leave no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_bannou.backends.local.backend import STATE_DIR_ENV, LocalBackend
from tests.support.procs import alive, carrying, interruptible

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
        preexec_fn=interruptible,
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


TESTER_PRESET = """
name: tracked
description: a tester that leaves a setsid grandchild and hangs
topology:
  nodes:
    - name: main
      appId: bannou
testers:
  - name: hanger
    format: exit-code
    timeout: 10m
    command:
      - sh
      - -c
      - >-
        setsid sh -c 'echo $$$$ > {dir}/grandchild.tmp && mv {dir}/grandchild.tmp {dir}/grandchild.pid;
        exec sleep 600' </dev/null >/dev/null 2>&1 &
        echo $$$$ > {dir}/tester.tmp && mv {dir}/tester.tmp {dir}/tester.pid;
        exec sleep 600
"""

USES_ALPHA = """
import pytest

@pytest.mark.preset("alpha")
def test_uses(bannou_env):
    pass
"""


@pytest.mark.parametrize("how", ["clean-all-stale", "clean-run-id", "next-session"])
def test_sigkilled_session_tester_and_its_grandchild_are_swept(bannou_pytester, monkeypatch, tmp_path, how):
    """A session SIGKILLed while its tester runs: the tester (own process group, which the kill
    does not reach) and its ``setsid`` grandchild are removed by ``bannou-env clean --all-stale``
    or by the next session's sweep, like the nodes."""
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir(mode=0o700)
    monkeypatch.setenv("TMPDIR", str(private_tmp))  # a runs root of its own: the sweep sees only this
    monkeypatch.setenv(STATE_DIR_ENV, str(bannou_pytester.pytester.mkdir("local-state")))
    pids_dir = bannou_pytester.pytester.mkdir("pids")
    (bannou_pytester.presets / "tracked.yaml").write_text(TESTER_PRESET.replace("{dir}", str(pids_dir)))
    bannou_pytester.pytester.makepyfile(test_uses=USES_ALPHA)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            *bannou_pytester.args("--bannou-backend=local", "--bannou-preset=tracked"),
        ],
        cwd=bannou_pytester.pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=interruptible,
    )
    leftovers: list[int] = []
    try:
        files = [pids_dir / "tester.pid", pids_dir / "grandchild.pid"]
        _wait_for(lambda: all(f.exists() for f in files) or proc.poll() is not None, timeout=120)
        assert proc.poll() is None, proc.communicate()[0]
        leftovers = [int(f.read_text()) for f in files]
        proc.kill()
        proc.wait()
        assert all(alive(p) for p in leftovers)  # SIGKILL reaches neither
        if how.startswith("clean"):
            if how == "clean-all-stale":
                which = ["--all-stale"]
            else:  # the one run, by its id (the only run directory under the private runs root)
                (run_dir,) = [d for d in private_tmp.glob("pytest-bannou-*/bannou-*") if d.is_dir()]
                which = ["--run-id", run_dir.name]
            done = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "from pytest_bannou.cli import main; raise SystemExit(main())",
                    "clean",
                    *which,
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            out = done.stdout
        else:
            result = bannou_pytester.run_subprocess("--bannou-backend=local", "test_uses.py", timeout=180)
            assert result.ret == 0, result.stdout.str()
            out = result.stdout.str()
        _wait_for(lambda: not any(alive(p) for p in leftovers), timeout=30)
        assert "tester hanger" in out, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        LocalBackend.clean(None)
        for pid in leftovers:  # by id: only what this test's inner session started
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
