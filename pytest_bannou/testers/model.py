"""Per-case tester results: what every parser produces and every reporter consumes.

Plain dataclasses so results cross process boundaries (xdist, CI artefacts) as JSON without a
schema library. ``unclear`` is kept apart from ``passed`` on purpose: upstream counts it as a pass,
the plugin shows it so nobody mistakes a shrug for a green test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from .._support.text import terminal_text

Outcome = Literal["passed", "failed", "not_run", "unclear", "error"]
OUTCOMES: tuple[Outcome, ...] = ("passed", "failed", "not_run", "unclear", "error")

# Names of cases the parsers invent when the output itself does not name a test.
SETUP_CASE = "(setup)"
EXIT_STATUS_CASE = "(exit status)"
NO_RESULTS_CASE = "(no results)"
INCOMPLETE_CASE = "(incomplete run)"
TIMEOUT_CASE = "(timeout)"


@dataclass
class CaseResult:
    name: str
    outcome: Outcome
    duration: float | None = None
    message: str = ""
    output: str = ""

    @property
    def is_failure(self) -> bool:
        return self.outcome in ("failed", "error")


@dataclass
class TesterRun:
    __test__ = False  # not a pytest test class despite the name

    tester: str
    format: str
    cases: list[CaseResult] = field(default_factory=list)
    exit_code: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    raw_tail: str = ""

    def count(self, *outcomes: Outcome) -> int:
        return sum(1 for c in self.cases if c.outcome in outcomes)

    @property
    def passed(self) -> int:
        return self.count("passed")

    @property
    def failed(self) -> int:
        """Failed and errored cases: both mean the run is not green."""
        return self.count("failed", "error")

    @property
    def not_run(self) -> int:
        return self.count("not_run")

    @property
    def unclear(self) -> int:
        return self.count("unclear")

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def case(self, name: str) -> CaseResult:
        for c in self.cases:
            if c.name == name:
                return c
        raise KeyError(f"tester {self.tester!r} has no case {name!r}")

    def counts_line(self) -> str:
        """``N passed, N failed`` with ``, N not run`` / ``, N unclear`` appended when non-zero."""
        line = f"{self.passed} passed, {self.failed} failed"
        if self.not_run:
            line += f", {self.not_run} not run"
        if self.unclear:
            line += f", {self.unclear} unclear"
        return line

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["counts"] = {
            "passed": self.passed,
            "failed": self.failed,
            "not_run": self.not_run,
            "unclear": self.unclear,
        }
        d["ok"] = self.ok
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TesterRun:
        return cls(
            tester=d["tester"],
            format=d["format"],
            cases=[CaseResult(**c) for c in d.get("cases", [])],
            exit_code=d.get("exit_code"),
            summary=dict(d.get("summary", {})),
            warnings=list(d.get("warnings", [])),
            raw_tail=d.get("raw_tail", ""),
        )


def escape_controls(run: TesterRun) -> TesterRun:
    """``run`` with every text a tester printed (case names, messages, output, warnings) made
    printable by ``terminal_text``: control characters escaped, newlines and tabs kept.

    Applied once, where a parsed run leaves the tester layer (the pytest items, the CLI), so
    that what reaches a terminal, pytest's reports and the report files cannot move the cursor,
    clear the screen or retitle the window.
    """
    return replace(
        run,
        tester=terminal_text(run.tester),
        cases=[
            replace(
                c,
                name=terminal_text(c.name),
                message=terminal_text(c.message),
                output=terminal_text(c.output),
            )
            for c in run.cases
        ],
        warnings=[terminal_text(w) for w in run.warnings],
        raw_tail=terminal_text(run.raw_tail),
    )
