"""The report's own data model: what one run (or a merge of runs) produced.

Kept free of pytest and of the other layers so that the plugin, the tester parsers, the CLI
and CI tooling can all build, read and merge reports the same way. Times are seconds since the
Unix epoch (``time.time()``); durations are seconds; ``None`` means "not measured".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

SCHEMA_VERSION = 1

#: every outcome a test or tester case can have, in the order the report lists them
OUTCOMES: tuple[str, ...] = ("failed", "error", "unclear", "not_run", "passed", "skipped")
#: outcomes that make a run fail
FAILING_OUTCOMES = frozenset({"failed", "error"})
KINDS: tuple[str, ...] = ("pytest", "tester")
#: matrix column used for tests that ran without a preset
NO_PRESET = "(no preset)"


class TimelineEvent(NamedTuple):
    """One phase of an environment's life (deploy, ready, tests, tester:NAME, transition, teardown)."""

    event: str
    t_start: float
    t_end: float


#: fault actions a report lists: what a test did, and the plugin's undoing (``restart``: a killed
#: node the engine did not bring back by itself)
FAULT_ACTIONS: tuple[str, ...] = ("kill", "pause", "resume", "disconnect", "reconnect", "restart")


@dataclass(frozen=True)
class FaultRecord:
    """One fault made on (or undone in) an environment: listed under the test that made it and
    marked on its environment's timeline."""

    action: str
    node: str
    at: float  # epoch seconds
    replica: int | None = None
    #: made by the plugin to end a test's faults (before the next test, at teardown), not by a test
    undo: bool = False
    env_key: str | None = None
    #: nodeid of the test that made it (None: the plugin's undo, or made outside a test)
    test: str | None = None

    def label(self) -> str:
        which = f"[{self.replica}]" if self.replica is not None else ""
        return f"{self.action} {self.node}{which}" + (" (undo)" if self.undo else "")


@dataclass
class PresetRecord:
    """One deployed environment: a preset on a backend, identified in the run by ``env_key``."""

    env_key: str
    preset: str
    preset_hash: str = ""
    backend: str = ""
    deploy_s: float | None = None
    ready_s: float | None = None
    teardown_s: float | None = None
    nodes: list[str] = field(default_factory=list)
    #: one-line summaries (``Transition.summary()``) of transitions applied to this environment
    transitions: list[str] = field(default_factory=list)
    #: node name -> number of restarts during the run
    restarts: dict[str, int] = field(default_factory=dict)
    timeline: list[TimelineEvent] = field(default_factory=list)
    #: why it failed to deploy (None: it deployed); a failed one is still listed, with its attempt
    error: str | None = None
    #: faults made on it and their undoing, in time order (the timeline's markers)
    faults: list[FaultRecord] = field(default_factory=list)


@dataclass
class TestRecord:
    """One result: a pytest test (one preset parametrisation) or one tester case."""

    __test__ = False  # not a pytest test class despite the name

    nodeid: str
    preset: str | None
    outcome: str
    duration: float | None = None
    longrepr_summary: str = ""
    kind: str = "pytest"
    tester: str | None = None
    warnings: list[str] = field(default_factory=list)
    #: the faults this test made (``bannou_env.kill/pause/...``), in time order
    faults: list[FaultRecord] = field(default_factory=list)


@dataclass
class RunReport:
    """Everything one session (or a merge of sessions) produced."""

    run_id: str
    backend: str
    started_at: float
    finished_at: float | None = None
    presets: list[PresetRecord] = field(default_factory=list)
    tests: list[TestRecord] = field(default_factory=list)
    ci_job: str | None = None
    schema_version: int = SCHEMA_VERSION
    #: the xdist worker id ("gw0") for a worker's partial report, else None
    worker: str | None = None
    #: for a merged report: one line per input ("run_id ci_job backend worker")
    sources: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Number of tests per outcome, every outcome present (zero when absent)."""
        counts = dict.fromkeys(OUTCOMES, 0)
        for test in self.tests:
            counts[test.outcome] = counts.get(test.outcome, 0) + 1
        return counts

    @property
    def ok(self) -> bool:
        return not any(t.outcome in FAILING_OUTCOMES for t in self.tests)

    def preset(self, env_key: str) -> PresetRecord:
        for record in self.presets:
            if record.env_key == env_key:
                return record
        raise KeyError(env_key)


def tester_nodeid(tester: str, case: str, preset: str | None) -> str:
    """The name every tester case carries everywhere: ``tester::<tester>::<case>[<preset>]``."""
    suffix = f"[{preset}]" if preset else ""
    return f"tester::{tester}::{case}{suffix}"


_PARAMS = re.compile(r"^(?P<base>.*?)\[(?P<params>.*)\]$", re.S)


def matrix_row(nodeid: str, *presets: str | None) -> str:
    """The test's row in the tests x presets matrix: its nodeid without the preset parameter.

    ``t.py::test_a[monolith]`` and ``t.py::test_a[split-auth]`` are one row; other parameters
    stay (``test_b[1-monolith]`` -> ``test_b[1]``). ``presets`` are the names the parameter may
    carry (the environment key, the preset name); the first that matches is removed.
    """
    match = _PARAMS.match(nodeid)
    if not match:
        return nodeid
    base, params = match["base"], match["params"]
    for preset in presets:
        if not preset:
            continue
        if params == preset:
            return base
        if params.endswith("-" + preset):
            return f"{base}[{params[: -len(preset) - 1]}]"
        if params.startswith(preset + "-"):
            return f"{base}[{params[len(preset) + 1 :]}]"
    return nodeid
