"""A tester's processes are tracked like the local backend's nodes (issue 12 point 3): own
process group, a run marker in the environment, a 0600 state file; what it started (also a
``setsid`` grandchild, which leaves the group) is gone when it ends or times out, and the sweep
of a dead session removes it. Only a process whose marker and start time prove it ours is ever
signalled. Real processes throughout."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_bannou.testers import runner
from pytest_bannou.topology import model as topology

PY = sys.executable

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/environ").exists() or shutil.which("setsid") is None,
    reason="needs Linux /proc and setsid(1)",
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _gone(pid: int, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _wait_pid(path: Path, timeout: float = 60.0) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        text = path.read_text().strip() if path.exists() else ""
        if text.isdigit():
            return int(text)
        time.sleep(0.05)
    raise AssertionError(f"{path} was never written")


@pytest.fixture
def strays() -> Iterator[list[int]]:
    """PIDs this test started outside run_tester: killed by id at the end, whatever happened."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def grandchild_code(pidfile: Path, then: str) -> str:
    """A tester that starts ``setsid sleep 600`` (its own session: out of the tester's process
    group), records the grandchild's PID, then runs ``then``."""
    return (
        "import subprocess, sys, time\n"
        f"subprocess.Popen(['setsid', 'sh', '-c', 'echo $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile};"
        " exec sleep 600'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        f"while not __import__('os').path.exists({str(pidfile)!r}): time.sleep(0.01)\n"
        "print('Running test: Spawn', flush=True)\n"
        f"{then}\n"
    )


def test_setsid_grandchild_is_gone_after_the_tester_ends(tmp_path: Path, strays: list[int]):
    pidfile = tmp_path / "grandchild.pid"
    spec = topology.TesterSpec(
        name="t", command=(PY, "-c", grandchild_code(pidfile, "print('done')")), format="exit-code"
    )
    run = runner.run_tester(spec, environment={}, workdir=tmp_path / "w", deadline_s=120)
    grandchild = _wait_pid(pidfile)
    strays.append(grandchild)
    assert run.exit_code == 0, run.raw_tail
    assert _gone(grandchild), f"setsid grandchild {grandchild} outlived its tester"


def test_setsid_grandchild_is_gone_after_the_tester_times_out(tmp_path: Path, strays: list[int]):
    pidfile = tmp_path / "grandchild.pid"
    spec = topology.TesterSpec(
        name="t", command=(PY, "-c", grandchild_code(pidfile, "time.sleep(600)")), format="exit-code"
    )
    run = runner.run_tester(spec, environment={}, workdir=tmp_path / "w", deadline_s=10)
    grandchild = _wait_pid(pidfile)
    strays.append(grandchild)
    assert run.summary["timed_out"] is True
    assert _gone(grandchild), f"setsid grandchild {grandchild} outlived its timed-out tester"


def test_the_tester_carries_its_marker_and_a_private_state_file(tmp_path: Path):
    state_dir = tmp_path / "tracked"
    code = (
        "import json, os, stat\n"
        f"d = {str(state_dir)!r}\n"
        "files = [f for f in os.listdir(d) if f.endswith('.json')]\n"
        "data = json.load(open(os.path.join(d, files[0])))\n"
        "mode = stat.S_IMODE(os.stat(os.path.join(d, files[0])).st_mode)\n"
        "print('SEEN ' + json.dumps({'n': len(files), 'mode': mode, 'pgid': data.get('pgid'),"
        " 'me': os.getpid(), 'marker': os.environ.get(data['marker_env']) == data['marker']}))\n"
    )
    spec = topology.TesterSpec(name="t", command=(PY, "-c", code), format="exit-code")
    run = runner.run_tester(spec, environment={}, workdir=tmp_path / "w", state_dir=state_dir)
    assert run.exit_code == 0, run.raw_tail
    line = next(ln for ln in Path(run.summary["log"]).read_text().splitlines() if "SEEN " in ln)
    seen = json.loads(line.split("SEEN ", 1)[1])
    assert seen == {"n": 1, "mode": 0o600, "pgid": seen["me"], "me": seen["me"], "marker": True}
    assert list(state_dir.glob("*.json")) == []  # removed at teardown


# --- the sweep of a dead session ---------------------------------------------------------------
@pytest.fixture
def runs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private runs root (the sweep looks at every run directory under it)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir(mode=0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    from pytest_bannou.environment.runs import runs_root as root

    return root()


def _dead_pid() -> int:
    proc = subprocess.Popen([PY, "-c", "pass"])
    proc.wait()
    return proc.pid


def _marked(value: str, var: str = "PYTEST_BANNOU_TESTER_SESSION") -> subprocess.Popen:
    env = {**os.environ, var: value}
    return subprocess.Popen(["sleep", "600"], env=env, start_new_session=True)


def test_sweep_signals_only_processes_proven_ours(runs_root: Path, strays: list[int]):
    from pytest_bannou._support import processes
    from pytest_bannou._support.tracked import MARKER_ENV, TRACKED_DIR
    from pytest_bannou.environment.sweep import sweep

    value = "bannou-0a0b0c0d.1." + "feedbeef" * 4
    other = _marked("bannou-0a0b0c0d.1." + "0be" * 10 + "ef")  # same marker name, another value
    early = _marked(value)  # the right value, but it predates the tester
    procs = [other, early]
    try:
        time.sleep(0.1)  # ten clock ticks: what starts now starts later than ``early``
        leader = _marked(value)  # the tester: the group the state file names
        procs.append(leader)
        stray = _marked(value)  # its setsid grandchild: found by the marker
        procs.append(stray)
        strays.extend(p.pid for p in procs)
        leader_start = processes.start_time(leader.pid)
        assert int(processes.start_time(early.pid) or 0) < int(leader_start or 0)
        run_dir = runs_root / "bannou-0a0b0c0d"
        (run_dir / TRACKED_DIR).mkdir(parents=True, mode=0o700)
        state = {
            "kind": "tester",
            "name": "t",
            "run_id": "bannou-0a0b0c0d",
            "marker_env": MARKER_ENV,
            "marker": value,
            "owner_pid": _dead_pid(),
            "owner_start": "1",
            "pgid": leader.pid,
            "start": leader_start,
        }
        planted = run_dir / TRACKED_DIR / "tester-t.json"
        planted.write_text(json.dumps(state))
        # a state file naming, as its group, a process with the marker name but another value
        other_file = {**state, "name": "other", "marker": "bannou-0a0b0c0d.1." + "1234" * 8}
        other_file.update(pgid=other.pid, start=processes.start_time(other.pid))
        (run_dir / TRACKED_DIR / "tester-other.json").write_text(json.dumps(other_file))
        # one whose group leader carries its marker, with another start time than recorded
        # (a recycled PID): neither the group nor the marker scan may signal it
        recycled_value = "bannou-0a0b0c0d.1." + "abcd" * 8
        recycled = _marked(recycled_value)
        procs.append(recycled)
        strays.append(recycled.pid)
        (run_dir / TRACKED_DIR / "tester-recycled.json").write_text(
            json.dumps(
                {
                    **state,
                    "name": "recycled",
                    "marker": recycled_value,
                    "pgid": recycled.pid,
                    "start": str(int(processes.start_time(recycled.pid) or 0) + 100),
                }
            )
        )
        lines = sweep([])
        assert _gone(leader.pid) and _gone(stray.pid), lines
        assert _alive(other.pid) and _alive(early.pid) and _alive(recycled.pid), lines
        assert any("tester t" in ln for ln in lines), lines
        assert not planted.exists()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()


def test_sweep_ignores_state_files_of_a_live_owner_or_another_user(runs_root: Path, strays: list[int]):
    from pytest_bannou._support import processes
    from pytest_bannou._support.tracked import MARKER_ENV, TRACKED_DIR
    from pytest_bannou.environment.sweep import sweep

    value = "bannou-0a0b0c0e.1." + "cafe" * 8
    proc = _marked(value)
    strays.append(proc.pid)
    try:
        run_dir = runs_root / "bannou-0a0b0c0e"
        (run_dir / TRACKED_DIR).mkdir(parents=True, mode=0o700)
        state = {
            "kind": "tester",
            "name": "t",
            "run_id": "bannou-0a0b0c0e",
            "marker_env": MARKER_ENV,
            "marker": value,
            "owner_pid": os.getpid(),  # this session: alive
            "owner_start": processes.start_time(os.getpid()),
            "pgid": proc.pid,
            "start": processes.start_time(proc.pid),
        }
        (run_dir / TRACKED_DIR / "tester-t.json").write_text(json.dumps(state))
        sweep([])
        time.sleep(0.3)
        assert _alive(proc.pid)
    finally:
        proc.kill()
        proc.wait()
