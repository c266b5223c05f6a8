"""Process groups of the local backend: spawning a replica, signalling, finding what is ours.

Every replica is the leader of its own session and process group; every process carries the
backend session's marker (``SESSION_ENV``) in its environment, so a process is only ever signalled
when it can be proven ours: it still carries the marker and, where the state file recorded it,
its start time is the one it had when it was spawned (psutil: Linux, macOS, the BSDs). The
primitives are in ``_support.processes``, shared with the testers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..._support.processes import (  # callers also use these as processes.X
    carries,
    is_zombie,
    kill_all_marked,
    live_groups,
    marked,
    marked_group_is_ours,
    signal_group,
    start_time,
)
from ..base import ExecResult

RUN_ID_ENV = "PYTEST_BANNOU_RUN_ID"  # in every process this backend starts
# one value per backend instance (xdist workers may share a run id): what teardown/clean match
SESSION_ENV = "PYTEST_BANNOU_LOCAL_SESSION"
HOST = "127.0.0.1"
KILL_WAIT = 2.0  # after SIGKILL, how long to wait for the kernel to remove the processes


class Adopted:
    """The leader of a replica that another process of the same run started (a kept run that
    ``bannou-env update`` changes): not a child of this process, so it runs while its PID has
    the start time the state file recorded (a reused PID has another), or, recorded without
    one, while it carries the session's marker (some servers, redis-server, overwrite their
    environment with their process title, so the marker alone cannot tell); the ``Popen`` calls
    the backend makes (``poll``, ``wait``, ``pid``). Its exit code is unknown: -1."""

    def __init__(self, pid: int, session: str, start: str | None) -> None:
        self.pid = pid
        self.session = session
        self.start = start
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and not self._alive():
            self.returncode = -1
        return self.returncode

    def _alive(self) -> bool:
        if self.pid <= 1:
            return False
        if self.start is not None:  # a zombie (ended, not yet reaped) is gone
            return start_time(self.pid) == self.start and not is_zombie(self.pid)
        return group_is_ours(self.pid, self.session, None)

    def wait(self, timeout: float | None = None) -> int:
        end = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if end is not None and time.monotonic() >= end:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0.0)
            time.sleep(0.01)
        return code


@dataclass
class Replica:
    """One running (or exited) replica: its processes, ports and log file."""

    node: str
    index: int
    argv: list[str]
    env: dict[str, str]
    ports: dict[int, int]  # container port -> host port
    log_path: Path
    proc: subprocess.Popen | Adopted | None = None  # leader of its own session and process group
    restarts: int = 0
    start: str | None = None  # the leader's start time (_support.processes.start_time)

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    @property
    def pgid(self) -> int:
        return self.pid

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def to_json(self) -> dict:
        return {
            "node": self.node,
            "replica": self.index,
            "pid": self.pid,
            "pgid": self.pgid,
            "start": self.start,
            "ports": {str(k): v for k, v in self.ports.items()},
            "log": str(self.log_path),
            "argv": self.argv,
        }


def spawn(r: Replica) -> None:
    """Start ``r`` in its own session (a Ctrl-C reaches only pytest), output to its log file
    (the previous one is kept as ``.previous.log``); records its start time. ``OSError`` when
    the command cannot run."""
    r.log_path.parent.mkdir(parents=True, exist_ok=True)
    if r.log_path.exists() and r.log_path.stat().st_size:
        os.replace(r.log_path, r.log_path.with_suffix(".previous.log"))
    for d in ("RABBITMQ_MNESIA_BASE", "RABBITMQ_LOG_BASE"):
        if d in r.env:
            Path(r.env[d]).mkdir(parents=True, exist_ok=True)
    if "--dir" in r.argv:
        Path(r.argv[r.argv.index("--dir") + 1]).mkdir(parents=True, exist_ok=True)
    with open(r.log_path, "ab") as log:
        r.proc = subprocess.Popen(
            r.argv,
            env=r.env,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    r.start = start_time(r.proc.pid)


def run_with_timeout(argv: Sequence[str], env: dict[str, str], timeout: float) -> ExecResult:
    """Run ``argv`` in its own process group; exit code 124 and what was read at the timeout."""
    try:
        proc = subprocess.Popen(
            list(argv),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return ExecResult(127, f"cannot run {argv[0]!r}: {exc}")
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        signal_group(proc.pid, signal.SIGKILL)
        try:
            out, _ = proc.communicate(timeout=KILL_WAIT)
        except subprocess.TimeoutExpired:  # a descendant outside the group holds the pipe
            assert proc.stdout is not None
            proc.stdout.close()
            proc.wait()
            out = b""
        return ExecResult(124, out.decode(errors="replace") + f"\n(timed out after {timeout}s)")
    return ExecResult(proc.returncode, out.decode(errors="replace"))


def stop_many(replicas: Iterable[Replica], grace: float) -> None:
    """SIGTERM every group at once, SIGKILL what is left after ``grace`` seconds."""
    replicas = [r for r in replicas if r.proc]
    if not replicas:
        return
    for r in replicas:
        if r.proc.poll() is None:  # type: ignore[union-attr]  # an ended leader's pid may be reused
            signal_group(r.pgid, signal.SIGTERM)
    grace_end = time.monotonic() + grace
    pending = replicas
    while pending:
        for r in pending:
            r.proc.poll()  # type: ignore[union-attr]
        alive = live_groups({r.pgid for r in pending})
        pending = [r for r in pending if r.pgid in alive]
        if not pending or time.monotonic() >= grace_end:
            break
        time.sleep(0.005)
    for r in pending:
        signal_group(r.pgid, signal.SIGKILL)
    kill_end = time.monotonic() + KILL_WAIT
    for r in replicas:
        with contextlib.suppress(subprocess.TimeoutExpired):
            r.proc.wait(timeout=max(0.0, kill_end - time.monotonic()))  # type: ignore[union-attr]


def accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


def carries_marker(pid: int, session: str) -> bool:
    """Whether live process ``pid`` has this backend session's marker in its environment."""
    return carries(pid, SESSION_ENV, session)


def marked_pids(session: str) -> list[int]:
    """Live processes whose environment carries this backend session (ours, so safe to kill)."""
    return marked(SESSION_ENV, session)


def kill_marked(session: str, grace: float, exclude: set[int]) -> list[int]:
    """SIGTERM then SIGKILL every process of ``session`` (also descendants that left their group)."""
    return kill_all_marked(SESSION_ENV, session, grace, exclude)


def group_is_ours(pgid: int, session: str, recorded_start: str | None) -> bool:
    """Whether process group ``pgid`` may be signalled for ``session``: its leader still runs,
    carries the session's marker and (when recorded) has the start time the state file names."""
    return marked_group_is_ours(pgid, SESSION_ENV, session, recorded_start)


def signal_replica(r: Replica, session: str, sig: int) -> bool:
    """Send ``sig`` to the replica's process group only when it is proven ours (marker and
    recorded start time, ``group_is_ours``); False when the group is gone or not ours."""
    if r.proc is None or r.proc.poll() is not None or not group_is_ours(r.pgid, session, r.start):
        return False
    signal_group(r.pgid, sig)
    return True


def signal_leader(r: Replica, session: str, sig: int) -> bool:
    """Send ``sig`` to the replica's leader alone (``leader`` passes it to the server it runs),
    only when its group is proven ours; False otherwise."""
    if r.proc is None or r.proc.poll() is not None or not group_is_ours(r.pgid, session, r.start):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(r.pid, sig)
    return True


def kill_replica(r: Replica, session: str) -> bool:
    """SIGKILL the replica's group (a fault: no grace) and reap the leader; False when it was not
    signalled (gone already, or not proven ours)."""
    if not signal_replica(r, session, signal.SIGKILL) or r.proc is None:
        return False
    with contextlib.suppress(subprocess.TimeoutExpired):
        r.proc.wait(timeout=KILL_WAIT)
    return True
