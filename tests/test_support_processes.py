"""The ownership proof of the sweep goes through psutil (issue 16 point 6): what psutil says a
process's environment and start time are is what decides whether it is signalled, so the proof
is the same on every system psutil supports, not only where ``/proc`` can be read by hand."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pytest_bannou._support import processes, tracked
from pytest_bannou._support.pids import pid_alive


@pytest.fixture
def marked_group() -> Iterator[tuple[subprocess.Popen, str]]:
    """A ``sleep`` leading its own group and carrying a tracked marker, as a tester would."""
    marker = tracked.new_marker("psutil")
    proc = subprocess.Popen(
        ["sleep", "600"], env={**os.environ, tracked.MARKER_ENV: marker}, start_new_session=True
    )
    yield proc, marker
    proc.kill()
    proc.wait()


def _state(proc: subprocess.Popen, marker: str) -> dict:
    data = tracked.record("tester", "psutil", "psutil-run", marker)
    data.update(owner_pid=0, pgid=proc.pid, start=processes.start_time(proc.pid))
    return data


def test_the_sweep_proves_ownership_through_psutil(marked_group, monkeypatch) -> None:
    proc, marker = marked_group
    data = _state(proc, marker)
    assert processes.marked_group_is_ours(proc.pid, tracked.MARKER_ENV, marker, data["start"])

    # psutil reports no marker: the group is not ours, and the sweep leaves it alone
    with monkeypatch.context() as m:
        m.setattr(psutil.Process, "environ", lambda self: {})
        assert not processes.marked_group_is_ours(proc.pid, tracked.MARKER_ENV, marker, data["start"])
        assert tracked.stop(data, grace=0.1) == []
        assert proc.poll() is None

    # psutil reports another creation time (a reused PID): not ours either
    with monkeypatch.context() as m:
        real = psutil.Process.create_time
        m.setattr(psutil.Process, "create_time", lambda self: real(self) + 1.0)
        assert not processes.marked_group_is_ours(proc.pid, tracked.MARKER_ENV, marker, data["start"])

    assert tracked.stop(data, grace=5.0) == [f"stopped tester psutil (process group {proc.pid})"]
    proc.wait(timeout=30)


def test_a_zombie_is_told_by_psutil(monkeypatch) -> None:
    """``pid_alive``: psutil's process status decides, a zombie counts as gone."""
    assert pid_alive(os.getpid())
    monkeypatch.setattr(psutil.Process, "status", lambda self: psutil.STATUS_ZOMBIE)
    assert not pid_alive(os.getpid())


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the Linux format of start times")
def test_start_times_on_linux_are_the_clock_ticks_earlier_versions_recorded() -> None:
    """State files written before psutil name ``/proc/PID/stat`` field 22: still matched."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for pid in (os.getpid(), child.pid):
            raw = Path(f"/proc/{pid}/stat").read_text()
            assert processes.start_time(pid) == raw[raw.rfind(")") + 2 :].split()[19]
    finally:
        child.kill()
        child.wait()
