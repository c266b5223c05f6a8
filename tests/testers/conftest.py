"""Fixtures for the tester layer: fixture transcripts, a real reference node process, and
tiny HTTP servers (separate processes) that break the node contract on purpose."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.testers import DATA

SERVERS = Path(__file__).parent / "servers.py"
NODE_MODULE = Path(__file__).parents[2] / "pytest_bannou" / "reference" / "node.py"


@pytest.fixture
def data() -> Path:
    return DATA


class Proc:
    """A server process started by a test, stopped by its pid."""

    def __init__(self, argv: list[str], env: dict[str, str], ready: str, log: Path) -> None:
        self.log = log
        self._out = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, env=env, stdout=self._out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            text = log.read_text(errors="replace")
            m = re.search(ready, text)
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server {argv} did not start:\n{text}")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._out.close()


@pytest.fixture
def start_node(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Start the real reference node (``python -m pytest_bannou.reference.node``) with the given
    services enabled; returns the running process with ``url``."""
    if not NODE_MODULE.exists():
        pytest.skip("pytest_bannou/reference/node.py is not in this build")
    started: list[Proc] = []

    def start(services: list[str], app_id: str = "bannou") -> Proc:
        env = dict(os.environ)
        env.update(
            HTTP_WEB_HOST_PORT="0",
            BANNOU_BIND_HOST="127.0.0.1",
            BANNOU_APP_ID=app_id,
            BANNOU_SERVICES_ENABLED="false",
        )
        for s in services:
            env[f"{s.replace('-', '_').upper()}_SERVICE_ENABLED"] = "true"
        proc = Proc(
            [sys.executable, "-m", "pytest_bannou.reference.node"],
            env,
            r"listening on :(\d+)",
            tmp_path / f"node-{len(started)}.log",
        )
        started.append(proc)
        return proc

    yield start
    for p in started:
        p.stop()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Start one of the contract-breaking servers in ``servers.py`` (crash after N requests,
    non-JSON answers)."""
    started: list[Proc] = []

    def start(mode: str, *args: str) -> Proc:
        proc = Proc(
            [sys.executable, str(SERVERS), mode, *args],
            dict(os.environ),
            r"listening on :(\d+)",
            tmp_path / f"server-{len(started)}.log",
        )
        started.append(proc)
        return proc

    yield start
    for p in started:
        p.stop()
