"""Teardown guarantees under faults: signals at random moments, a failing fixture, ``-x``, a
crashed xdist worker, a node that never becomes ready, and SIGKILL (swept by the next session
and by ``bannou-env clean --all-stale``). Verified by PID and by run id on the local backend."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys

import pytest

from tests.support.reliability import alive, carrying, wait_for

from . import faults

HANGS = """
import time, pytest

@pytest.mark.preset("red")
def test_hangs(bannou_env):
    time.sleep(120)
"""


def _state_pids(project) -> tuple[set[int], set[str]]:
    """PIDs and run ids the local backend's state files list right now."""
    pids, run_ids = set(), set()
    for path in project.state_dir.glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        run_ids.add(data.get("run_id", ""))
        pids.update(int(r["pid"]) for r in data.get("replicas", []) if r.get("pid"))
    return pids, run_ids


LOCAL_SIGINT_RUNS = 14  # + 6 on compose (test_docker_faults.py): the 20
LOCAL_SIGTERM_RUNS = 4  # one per phase
LOCAL_SIGKILL_RUNS = 7  # + 3 on compose: the 10


@pytest.mark.parametrize(
    ("sig", "runs"),
    [(signal.SIGINT, LOCAL_SIGINT_RUNS), (signal.SIGTERM, LOCAL_SIGTERM_RUNS)],
    ids=["SIGINT", "SIGTERM"],
)
def test_signal_at_random_moments_leaves_nothing(project, sig, runs):
    """Bounded loop: a signal at a random moment of deploy, tests, transition or teardown."""
    outcome = faults.interrupt_loop(
        project, sig, runs, "local", random.Random(7 + sig), lambda rid: faults.local_leaks(project, rid)
    )
    assert outcome.runs == outcome.interrupted == runs
    assert set(outcome.hit or {}) >= set(faults.PHASES), outcome.hit  # every phase was hit
    assert project.leftovers() == {}
    assert list(project.state_dir.glob("*.json")) == []


def test_exception_in_a_fixture_tears_down(project):
    project.write(
        "test_fixture.py",
        """
        import pytest

        @pytest.fixture
        def broken(bannou_env):
            raise RuntimeError("fixture failed after the deploy")

        @pytest.mark.preset("red")
        def test_uses_broken(broken):
            pass
        """,
    )
    code, out = project.run("-q", "-p", "no:cacheprovider")
    assert code == 1 and "fixture failed after the deploy" in out, out
    deploys = project.deploys()
    assert deploys and not any(alive(p) for d in deploys for p in d["pids"])
    assert project.leftovers() == {}


def test_exitfirst_tears_down(project):
    project.write(
        "test_x.py",
        """
        import pytest

        @pytest.mark.preset("red")
        def test_fails(bannou_env):
            assert False, "first failure"

        @pytest.mark.preset("green")
        def test_never_runs(bannou_env):
            pass
        """,
    )
    code, out = project.run("-x", "-q", "-p", "no:cacheprovider")
    assert code == 1 and "1 failed" in out, out
    deploys = project.deploys()
    assert [d["key"] for d in deploys] == ["red"]
    assert not any(alive(p) for d in deploys for p in d["pids"])
    assert project.leftovers() == {}


def test_crashed_worker_resources_are_removed_by_the_controller(project):
    pytest.importorskip("xdist", reason="pip install pytest-xdist")
    project.write(
        "test_crash.py",
        """
        import os, pytest

        @pytest.mark.preset("red")
        def test_crashes(bannou_env):
            os._exit(3)

        @pytest.mark.preset("green")
        @pytest.mark.parametrize("i", range(2))
        def test_green(bannou_env, i):
            pass
        """,
    )
    code, out = project.run("-n2", "-q", "-p", "no:cacheprovider")
    assert code == 1, out
    deploys = project.deploys()
    red = [d for d in deploys if d["key"] == "red"]
    assert red and red[0]["pids"], deploys
    assert "crashed" in out and f"run {red[0]['run_id']}" in out, out
    assert not any(alive(p) for d in deploys for p in d["pids"])
    assert project.leftovers() == {}


def test_a_never_ready_node_fails_only_its_preset(project):
    project.write(
        "test_stuck.py",
        """
        import pytest

        @pytest.mark.preset("stuck")
        @pytest.mark.parametrize("i", range(2))
        def test_stuck(bannou_env, i):
            pass

        @pytest.mark.preset("red")
        @pytest.mark.parametrize("i", range(2))
        def test_red(bannou_env, i):
            pass
        """,
    )
    code, out = project.run("-q", "-p", "no:cacheprovider", "--bannou-ready-timeout=3")
    assert code == 1, out
    assert "2 passed, 2 errors" in out, out
    assert "stuck" in out and "sleeper" in out
    pids, _ = _state_pids(project)
    assert pids == set()
    assert project.leftovers() == {}


def _killed_session(project) -> dict:
    """Start a run, wait until its environment is ready, SIGKILL pytest; return the record."""
    project.reset_deploys()
    proc = project.start("-q", "-p", "no:cacheprovider", "test_hangs.py")
    try:
        record = wait_for(lambda: project.deploys() or proc.poll() is not None)
        assert proc.poll() is None, project.output(proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    record = record[0]
    assert record["pids"] and all(alive(p) for p in record["pids"])  # SIGKILL: nothing tore down
    return record


def test_sigkill_leftovers_are_swept_by_the_next_session(project):
    """Bounded loop: each session is SIGKILLed during its tests; the next one sweeps it."""

    def evidence(run_id: str) -> list[str]:
        pids = faults.state_pids(project, run_id)
        assert pids and all(alive(p) for p in pids)  # SIGKILL: nothing tore down
        return faults.local_leaks(project, run_id)

    swept = faults.sigkill_chain(
        project,
        LOCAL_SIGKILL_RUNS,
        "local",
        random.Random(11),
        evidence,
        lambda rid: faults.local_leaks(project, rid),
    )
    assert swept >= LOCAL_SIGKILL_RUNS
    assert project.leftovers() == {}
    assert list(project.state_dir.glob("*.json")) == []


def test_sigkill_leftovers_are_removed_by_clean_all_stale(project):
    project.write("test_hangs.py", HANGS)
    record = _killed_session(project)
    cli = subprocess.run(
        [sys.executable, "-m", "pytest_bannou.cli", "clean", "--all-stale", "--backend", "local"],
        env=project.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert f"run {record['run_id']} (local)" in cli.stdout, cli.stdout
    assert not any(alive(p) for p in record["pids"])
    assert carrying(record["run_id"]) == []
    again = subprocess.run(
        [sys.executable, "-m", "pytest_bannou.cli", "clean", "--all-stale", "--backend", "local"],
        env=project.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "nothing stale to remove" in again.stdout
