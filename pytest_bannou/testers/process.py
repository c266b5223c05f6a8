"""Running a tester as a local process: the one place that knows about PIDs and pipes.

The process gets its own session (process group) so that a deadline kills the tester *and*
whatever it started, and carries a marker of its own (``_support.tracked``): when it ends or
times out, its group and every process still carrying the marker (a ``setsid`` grandchild left
the group) are killed, and its state file (0600, in ``state_dir``) lets the sweep do the same
after the session was killed. stdin is closed so an interactive tester cannot steal the terminal. Output
(stdout and stderr merged) is written to a log file with an RFC 3339 timestamp per line, like
``docker logs --timestamps``, which is what gives per-test durations. A container variant
implements the same ``ProcessOutcome`` contract.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._support import tracked
from .._support.processes import start_time

KILL_GRACE_S = 3.0  # SIGTERM -> SIGKILL
DRAIN_S = 2.0  # after exit, how long to wait for output still in flight
MAX_LINE = 1 << 20  # a longer line without newline is written in pieces


@dataclass(frozen=True)
class ProcessOutcome:
    exit_code: int | None  # None when killed at the deadline
    timed_out: bool
    duration: float
    pid: int


def _stamp() -> bytes:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ ").encode()


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    timeout: float,
    name: str = "tester",
    run_id: str = "",
    state_dir: Path | None = None,
) -> ProcessOutcome:
    """Run ``argv`` (no shell) until it exits or ``timeout`` seconds pass; log its output.
    Nothing it started is left running afterwards; ``state_dir`` gets its state file meanwhile.

    Raises ``OSError`` when the program cannot be started (the caller turns it into a result).
    """
    marker = tracked.new_marker(run_id)
    state = tracked.record("tester", name, run_id, marker)
    state_path = state_dir / f"tester-{marker.rsplit('.', 1)[1][:12]}.json" if state_dir else None
    if state_path is not None:  # before the spawn: a session killed right after it still finds it
        tracked.write(state_path, state)
    try:
        return _run(argv, {**env, tracked.MARKER_ENV: marker}, cwd, log_path, timeout, state, state_path)
    finally:
        tracked.stop(state, grace=KILL_GRACE_S)  # the group is gone: what carries the marker
        if state_path is not None:
            with contextlib.suppress(OSError):
                state_path.unlink()


def _run(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    timeout: float,
    state: dict[str, Any],
    state_path: Path | None,
) -> ProcessOutcome:
    start = time.monotonic()
    deadline = start + max(0.0, timeout)
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(env),
        cwd=str(cwd),
        start_new_session=True,
    )
    pgid = proc.pid  # session leader: its pid is the group id
    state.update(pgid=pgid, start=start_time(pgid))
    if state_path is not None:
        tracked.write(state_path, state)
    timed_out = False
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    pending = b""
    exited_at: float | None = None
    try:
        with open(log_path, "wb") as log:
            while True:
                now = time.monotonic()
                if exited_at is None and proc.poll() is not None:
                    exited_at = now
                if exited_at is not None and now - exited_at > DRAIN_S:
                    break  # something outside the tester still holds the pipe open
                if exited_at is None and now >= deadline:
                    timed_out = True
                    _kill_group(pgid, signal.SIGTERM)
                    try:
                        proc.wait(KILL_GRACE_S)
                    except subprocess.TimeoutExpired:
                        _kill_group(pgid, signal.SIGKILL)
                        proc.wait()
                    exited_at = time.monotonic()
                wait = 0.2 if exited_at is not None else min(0.2, max(0.0, deadline - now))
                if not sel.select(wait):
                    continue
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    log.write(_stamp() + line + b"\n")
                if len(pending) > MAX_LINE:
                    log.write(_stamp() + pending + b"\n")
                    pending = b""
                log.flush()
            if pending:
                log.write(_stamp() + pending + b"\n")
    finally:
        sel.close()
        proc.stdout.close()
        if proc.poll() is None:
            # still running after the drain window or an exception here: end it
            _kill_group(pgid, signal.SIGKILL)
        proc.wait()
        _kill_group(pgid, signal.SIGKILL)  # leftovers the tester started in its group
    duration = time.monotonic() - start
    return ProcessOutcome(None if timed_out else proc.returncode, timed_out, duration, proc.pid)
