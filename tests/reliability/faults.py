"""Signals at chosen moments of inner runs, shared by the local and compose fault loops.

An inner run of ``TWO_ENVS`` deploys one preset, runs its tests, transitions to the other preset
(its only node is recreated), runs those tests and tears down. ``phase_of`` says where a run is
from the events the inner conftest writes (see ``tests.support.reliability.CONFTEST``), so a
loop can aim a signal at a random moment inside a chosen phase and report the phase it hit.

- ``interrupt_loop``: SIGINT (Ctrl-C: the whole foreground process group) or SIGTERM (the pytest
  process) per run, aimed round robin at deploy, tests, transition and teardown; after each run
  nothing carrying its run id may be left.
- ``sigkill_chain``: each session is SIGKILLed while its tests run; the next session must sweep
  what it left before its own deploy, and is itself killed, until a last session runs to the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.support.reliability import DEADLINE, Project, alive, carrying, finish

PHASES = ("deploy", "tests", "transition", "teardown")
TEARDOWN_PAUSE = 0.3  # the inner conftest pauses this long when teardown begins
# inner runs load pytest-bannou alone: no other plugin's import (hypothesis alone costs 0.7 s a run)
LIGHT = ("-p", "no:cacheprovider", "-p", "pytest_bannou.plugin")
LIGHT_ENV = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}

TWO_ENVS = """
import time, pytest

@pytest.mark.preset("amber")
@pytest.mark.parametrize("i", range(2))
def test_amber(bannou_env, i):
    time.sleep(0.4)

@pytest.mark.preset("teal")
@pytest.mark.parametrize("i", range(2))
def test_teal(bannou_env, i):
    time.sleep(0.4)
"""

# how long after a phase began the signal may come (uniform), so that it lands inside the phase:
# a local deploy or transition lasts at least the node's 0.3 s startup delay, a compose one much
# longer; each preset's tests last 0.8 s; teardown at least TEARDOWN_PAUSE
WINDOWS = {
    "local": {"deploy": 0.25, "tests": 0.6, "transition": 0.25, "teardown": 0.25},
    "compose": {"deploy": 0.8, "tests": 0.6, "transition": 0.6, "teardown": 0.25},
}
# exit status by the phase the signal hit: interrupted, except during teardown (signals are
# ignored there, the tests had passed) or when the run had already finished. Rarely (seen once in
# ~40 SIGINTs a few ms into a local deploy) pytest reports the interrupt, tears down and then
# dies of the signal itself (-2, like any Ctrl-C'd program): accepted, counted and printed, and
# the leak checks apply as for every run
EXPECTED = {phase: {pytest.ExitCode.INTERRUPTED} for phase in ("deploy", "tests", "transition")}
EXPECTED |= {"teardown": {pytest.ExitCode.OK}, "finished": {pytest.ExitCode.OK}}


def preset_of(nodeid: str) -> str:
    return nodeid.rsplit("::", 1)[-1].split("[")[0].removeprefix("test_")


def phase_of(events: list[tuple[str, str]]) -> str:
    """startup, deploy, tests, transition or teardown: where the run is after ``events``."""
    phase, current, readies = "startup", None, 0
    for kind, what in events:
        if kind == "start":
            phase = "tests" if preset_of(what) == current else "deploy" if readies == 0 else "transition"
        elif kind == "ready":
            current, readies, phase = what, readies + 1, "tests"
        elif kind == "teardown":
            phase = "teardown"
    return phase


def readies(events: list[tuple[str, str]]) -> int:
    return sum(kind == "ready" for kind, _ in events)


def reached(events: list[tuple[str, str]], target: str, nth_ready: int) -> bool:
    """In phase ``target`` (for "tests": of the ``nth_ready`` environment or a later one)."""
    return phase_of(events) == target and (target != "tests" or readies(events) >= nth_ready)


def ended(project: Project, proc: subprocess.Popen) -> str:
    finish(proc)
    return project.output(proc)


def session_run_id(project: Project) -> str:
    ids = [what for kind, what in project.events() if kind == "session"]
    assert ids, "the inner run wrote no session event"
    return ids[-1]


def state_pids(project: Project, run_id: str | None = None) -> set[int]:
    """Node PIDs the local backend's state index lists right now (for ``run_id``, or all)."""
    pids = set()
    for path in project.state_dir.glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if run_id is None or data.get("run_id") == run_id:
            pids.update(int(r["pid"]) for r in data.get("replicas", []) if r.get("pid"))
    return pids


@dataclass
class Outcome:
    runs: int = 0
    interrupted: int = 0
    node_pids: int = 0
    died_of_signal: int = 0  # interrupted runs whose pytest exited by the signal, not with 2
    hit: dict[str, int] | None = None

    def count(self, phase: str) -> None:
        self.hit = self.hit or {}
        self.hit[phase] = self.hit.get(phase, 0) + 1


def local_leaks(project: Project, run_id: str) -> list[str]:
    """What of ``run_id`` is left on the local backend: live processes carrying it (found by
    /proc, not by the state files under test) and state files naming it."""
    left = [f"process {pid}" for pid in carrying(run_id)]
    for path in project.state_dir.glob("*.json"):
        with contextlib.suppress(FileNotFoundError):
            if run_id in path.read_text():
                left.append(f"state file {path.name}")
    return left


def interrupt_loop(
    project: Project,
    sig: signal.Signals,
    runs: int,
    backend: str,
    rng: random.Random,
    leaks: Callable[[str], list[str]],
) -> Outcome:
    """``runs`` inner runs, each signalled at a random moment of a phase (round robin over
    PHASES in a shuffled order); asserts each run's exit status and that ``leaks(run_id)`` is
    empty afterwards, and prints one line per run."""
    project.write("test_phases.py", TWO_ENVS)
    order = list(PHASES)
    rng.shuffle(order)
    outcome = Outcome()
    seen_pids: set[int] = set()
    name = f"{sig.name} {backend}"
    for n in range(runs):
        target, nth_ready = order[n % len(order)], rng.choice((1, 2))
        delay = rng.uniform(0.0, WINDOWS[backend][target])
        project.reset_events()
        project.reset_deploys()
        proc = project.start(
            "-q",
            *LIGHT,
            f"--bannou-backend={backend}",
            "test_phases.py",
            BANNOU_TEST_TEARDOWN_PAUSE=str(TEARDOWN_PAUSE),
            **LIGHT_ENV,
        )
        end = time.monotonic() + DEADLINE
        while (
            proc.poll() is None
            and time.monotonic() < end
            and not reached(project.events(), target, nth_ready)
        ):
            seen_pids |= state_pids(project)
            time.sleep(0.01)
        assert proc.poll() is None, f"{name} run {n}: ended before {target}:\n{ended(project, proc)}"
        end = time.monotonic() + delay
        while time.monotonic() < end:
            seen_pids |= state_pids(project)
            time.sleep(0.01)
        before = phase_of(project.events())
        if proc.poll() is None:
            # Ctrl-C in a terminal signals the whole foreground process group; `kill` one process
            (os.killpg if sig == signal.SIGINT else os.kill)(proc.pid, sig)
            after = phase_of(project.events())
            outcome.interrupted += 1
        else:
            before = after = "finished"
        finish(proc)
        out = project.output(proc)
        run_id = session_run_id(project)
        seen_pids |= {p for d in project.deploys() for p in d["pids"]}
        phase = before if before == after else f"{before}/{after}"
        expected = EXPECTED.get(before, set()) | EXPECTED.get(after, set())
        if pytest.ExitCode.INTERRUPTED in expected:
            expected.add(-sig)
            outcome.died_of_signal += proc.returncode == -sig
        assert proc.returncode in expected, (
            f"{name} run {n}: {phase} +{delay:.2f} s, exit {proc.returncode}:\n{out}"
        )
        left = leaks(run_id)
        live = [p for p in seen_pids if alive(p)]
        assert left == [] and live == [], f"{name} run {n} ({phase}): left {left}, live PIDs {live}:\n{out}"
        outcome.runs += 1
        outcome.count(before)
        checked = (
            f"0 processes carrying it, 0 state files; {len(seen_pids)} node PIDs seen so far, all gone"
            if backend == "local"
            else "0 containers, networks or volumes labelled with it, 0 processes carrying it"
        )
        print(
            f"  {name} run {n + 1}/{runs}: aimed at {target}, signalled {delay:.2f} s in, hit {phase}, "
            f"exit {proc.returncode}; checked {run_id}: {checked}"
        )
    outcome.node_pids = len(seen_pids)
    hit = ", ".join(f"{p} {outcome.hit.get(p, 0)}" for p in PHASES) if outcome.hit else "-"
    seen = f"{outcome.node_pids} node processes seen, " if backend == "local" else ""
    print(
        f"{name}: {outcome.runs} runs, {outcome.interrupted} signalled, phases hit: {hit}; "
        f"{outcome.died_of_signal} exited by the signal instead of status 2; {seen}0 leaked"
    )
    return outcome


def sigkill_chain(
    project: Project,
    kills: int,
    backend: str,
    rng: random.Random,
    evidence: Callable[[str], list[str]],
    leaks: Callable[[str], list[str]],
) -> int:
    """``kills`` sessions SIGKILLed while their tests run, each followed by a new session that
    must sweep what it left (``evidence(run_id)`` before, ``leaks(run_id)`` empty after) before
    its own first deploy; the last session runs to the end. Returns the resources swept."""
    project.write("test_phases.py", TWO_ENVS)
    previous: tuple[str, list[str]] | None = None
    swept = 0
    for n in range(kills + 1):
        project.reset_events()
        proc = project.start(
            "-q",
            *LIGHT,
            f"--bannou-backend={backend}",
            "test_phases.py",
            PYTHONUNBUFFERED="1",
            **LIGHT_ENV,
        )
        killed = n < kills
        if killed:
            nth, delay = rng.choice((1, 2)), rng.uniform(0.0, WINDOWS[backend]["tests"])
            end = time.monotonic() + DEADLINE
            while proc.poll() is None and time.monotonic() < end and readies(project.events()) < nth:
                time.sleep(0.01)
            time.sleep(delay)
            assert proc.poll() is None, f"SIGKILL {backend} run {n}: ended early:\n{ended(project, proc)}"
            os.kill(proc.pid, signal.SIGKILL)
        finish(proc)
        out = project.output(proc)
        run_id = session_run_id(project)
        if previous is not None:  # this session swept the previous one before deploying
            prev_id, prev_left = previous
            assert f"stale resources of a dead session removed: run {prev_id} ({backend})" in out, out
            assert leaks(prev_id) == [], f"after the sweep of {prev_id}: {leaks(prev_id)}\n{out}"
            swept += len(prev_left)
            print(f"    session {n + 1} swept run {prev_id}: {len(prev_left)} resources, 0 left")
        if killed:
            left = evidence(run_id)
            assert left, f"SIGKILL {backend} run {n}: nothing was left to sweep:\n{out}"
            previous = (run_id, left)
            print(
                f"  SIGKILL {backend} run {n + 1}/{kills}: killed after environment {nth} was ready "
                f"+{delay:.2f} s (tests), left {len(left)} resources of {run_id}: {', '.join(left)}"
            )
        else:
            assert proc.returncode == 0, out
            assert leaks(run_id) == [], leaks(run_id)
    print(f"SIGKILL {backend}: {kills} runs killed, {swept} resources swept by the next sessions, 0 leaked")
    return swept
