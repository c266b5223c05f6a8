"""Reliability suite helpers: inner pytest runs as real subprocesses (signals, xdist workers,
SIGKILL) against small local presets, with a private local-backend state index per test, and
checks by PID and by run id that nothing is left behind."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_bannou.backends.local.backend import STATE_DIR_ENV
from pytest_bannou.environment.runs import run_directory, runs_root
from pytest_bannou.plugin.options import OPTIONS
from tests.support.procs import alive, carrying, interruptible

PRESETS = {
    name: f"""
        name: {name}
        description: one reference node ({name})
        topology:
          nodes:
            - name: main
              appId: bannou
              environment: {{FLAVOUR: {name}, DB_PASSWORD: s3cret-{name}-value}}
        """
    for name in ("red", "green", "blue", "gold")
}
# two presets whose only node differs: going from one to the other is a transition (recreate);
# the small startup delay gives deploys and transitions a window a signal can land in
for _name in ("amber", "teal"):
    PRESETS[_name] = f"""
        name: {_name}
        description: one reference node that binds after 0.3 s ({_name})
        topology:
          nodes:
            - name: main
              appId: bannou
              environment: {{FLAVOUR: {_name}, BANNOU_REFERENCE_STARTUP_DELAY: "0.3"}}
        """
PRESETS["stuck"] = """
    name: stuck
    description: a node that is never ready in time
    topology:
      nodes:
        - name: sleeper
          appId: bannou
          environment: {BANNOU_REFERENCE_STARTUP_DELAY: "60"}
    """

# every inner run records each environment that became ready (pid, worker, key, run id) in
# deploys.jsonl, and its phases in events.log: "session RUN_ID", "start NODEID" (before a test's
# setup, so before the deploy or transition it triggers), "ready KEY", "teardown KEY" (teardown
# begins; pauses BANNOU_TEST_TEARDOWN_PAUSE seconds there, so a signal can land in it)
CONFTEST = """
import json, os, time

HERE = os.path.dirname(__file__)

def _event(kind, what):
    with open(os.path.join(HERE, "events.log"), "a") as f:
        f.write(f"{kind} {what}\\n")

def pytest_sessionstart(session):
    manager = getattr(session.config.pluginmanager.get_plugin("bannou-session"), "manager", None)
    if manager is not None:
        _event("session", manager.run_id)

def pytest_runtest_logstart(nodeid, location):
    _event("start", nodeid)

def pytest_bannou_environment_ready(environment):
    record = {
        "pid": os.getpid(),
        "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
        "key": environment.key,
        "run_id": environment.run_id,
        "pids": [int(s.id) for s in environment.status() if s.id.isdigit()],
    }
    with open(os.path.join(HERE, "deploys.jsonl"), "a") as f:
        f.write(json.dumps(record) + "\\n")
    _event("ready", environment.key)

def pytest_bannou_before_teardown(environment):
    _event("teardown", environment.key)
    time.sleep(float(os.environ.get("BANNOU_TEST_TEARDOWN_PAUSE") or 0))
"""

RUN_ID = re.compile(r"bannou-[0-9a-f]{8}(?:-[a-z0-9]+)*")
DEADLINE = 120.0  # no inner run may take longer


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {predicate}")


class Project:
    """A tmp project with the presets above, run as `python -m pytest` subprocesses."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.presets = path / "presets"
        self.presets.mkdir()
        self.state_dir = path / "local-state"
        self.state_dir.mkdir()
        for name, text in PRESETS.items():
            (self.presets / f"{name}.yaml").write_text(textwrap.dedent(text))
        (path / "conftest.py").write_text(CONFTEST)
        self.env = {k: v for k, v in os.environ.items() if k not in {o.env for o in OPTIONS}}
        self.env.pop("PYTEST_XDIST_WORKER", None)
        self.env.pop("PYTEST_ADDOPTS", None)
        self.env[STATE_DIR_ENV] = str(self.state_dir)
        self.procs: list[subprocess.Popen] = []
        self.run_ids: set[str] = set()

    def write(self, name: str, source: str) -> Path:
        p = self.path / name
        p.write_text(textwrap.dedent(source))
        return p

    def argv(self, *args: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "pytest",
            f"--bannou-presets-dir={self.presets}",
            "-p",
            "no:randomly",
            "-o",
            "addopts=",
            *args,
        ]

    def start(self, *args: str, **env: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            self.argv(*args),
            cwd=self.path,
            env={**self.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # signals reach the inner pytest (and its workers) only
            preexec_fn=interruptible,
        )
        self.procs.append(proc)
        return proc

    def run(self, *args: str, timeout: float = DEADLINE, **env: str) -> tuple[int, str]:
        proc = self.start(*args, **env)
        finish(proc, timeout)
        return proc.returncode, self.output(proc)

    def output(self, proc: subprocess.Popen) -> str:
        out = getattr(proc, "_out", "")
        self.run_ids.update(RUN_ID.findall(out))
        return out

    def deploys(self) -> list[dict[str, Any]]:
        path = self.path / "deploys.jsonl"
        if not path.exists():
            return []
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        self.run_ids.update(r["run_id"] for r in records)
        return records

    def reset_deploys(self) -> None:
        (self.path / "deploys.jsonl").unlink(missing_ok=True)

    def events(self) -> list[tuple[str, str]]:
        """The inner runs' phase events (see CONFTEST), oldest first; a half-written last line
        (the run is still writing) is left for the next read."""
        try:
            text = (self.path / "events.log").read_text()
        except FileNotFoundError:
            return []
        found = []
        for line in text.split("\n")[:-1]:
            kind, _, what = line.partition(" ")
            found.append((kind, what))
            if kind == "session":
                self.run_ids.add(what)
        return found

    def reset_events(self) -> None:
        (self.path / "events.log").unlink(missing_ok=True)

    def leftovers(self) -> dict[str, list[int]]:
        self.deploys()
        return {rid: pids for rid in sorted(self.run_ids) if (pids := carrying(rid))}

    def cleanup(self) -> None:
        """Kill what a failed test may have left, by PID and run id only."""
        for proc in self.procs:
            if proc.poll() is None:
                with_suppress_kill(proc.pid)
                proc.wait(timeout=10)
        for pids in self.leftovers().values():
            for pid in pids:
                with_suppress_kill(pid)
        for rid in self.run_ids:  # failed and killed runs keep their node logs: remove them
            info = run_directory(rid) / "environment.json"
            if not (info.exists() and '"kept": true' in info.read_text()):
                shutil.rmtree(run_directory(rid), ignore_errors=True)
        for path in self.state_dir.glob("*.json"):
            with_suppress_kill_state(path)


def with_suppress_kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def with_suppress_kill_state(path: Path) -> None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    for rep in data.get("replicas", []):
        pid = int(rep.get("pid") or 0)
        if pid > 1 and alive(pid):
            with_suppress_kill(pid)


def finish(proc: subprocess.Popen, timeout: float = DEADLINE) -> None:
    """Wait for an inner run (killing it after ``timeout``) and keep its output on the object."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with_suppress_kill(proc.pid)
        out, _ = proc.communicate()
        proc._out = out  # type: ignore[attr-defined]
        raise AssertionError(f"inner pytest did not finish within {timeout:.0f} s:\n{out}") from None
    proc._out = out  # type: ignore[attr-defined]


def run_dirs() -> set[str]:
    root = runs_root()
    return {d.name for d in root.glob("bannou-*")} if root.is_dir() else set()
