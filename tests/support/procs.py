"""Process checks shared by the signal and reliability tests: read /proc directly, independently
of the local backend's own bookkeeping, so a leak the backend lost track of is still found."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from pytest_bannou.backends.local.backend import RUN_ID_ENV


def interruptible() -> None:
    """``preexec_fn`` of an inner pytest the test will Ctrl-C: SIGINT back to its default, so
    that Python turns it into ``KeyboardInterrupt`` even when the suite itself was started with
    SIGINT ignored (``nohup``, a shell's background job), which a child would otherwise inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def carrying(run_id: str) -> list[int]:
    """Live processes whose environment carries ``run_id`` (what the local backend started)."""
    marker = f"{RUN_ID_ENV}={run_id}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if marker in Path(f"/proc/{entry.name}/environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return [p for p in found if alive(p)]
