"""Shared bookkeeping for the console parsers: which case is running, its own output lines,
its start time, and closing it with a verdict.

Built for big transcripts (100,000 tests, 50 MB logs): a case's output is a list of references
to lines the caller already holds, appended to directly by the parse loop (``lines``), and cut to
its last ``MAX_CASE_LINES`` lines and ``MAX_CASE_CHARS`` characters when the case is closed, so
the memory a result keeps is bounded.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from .model import CaseResult, Outcome

MAX_CASE_LINES = 400
MAX_CASE_CHARS = 64_000  # with the line cap: a case's output is bounded however long its lines

# worse outcomes win when one case gets two verdicts
_RANK = {"not_run": 0, "passed": 1, "unclear": 2, "failed": 3, "error": 4}


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while a parser builds 100,000s of small acyclic objects: otherwise
    each generation-0 collection rescans the growing result and parsing turns superlinear."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def exception_message(detail: str) -> str:
    """The message of a verdict "failed with exception[: detail]"."""
    return f"exception: {detail}" if detail else "exception"


class _Open:
    __slots__ = ("case", "lines", "start", "verdict_seen")

    def __init__(self, case: CaseResult, start: float | None) -> None:
        self.case = case
        self.start = start
        self.lines: list[str] = []
        self.verdict_seen = False


class CaseTracker:
    """Cases in order of appearance; output lines go to the most recently started case."""

    def __init__(self) -> None:
        self.cases: list[CaseResult] = []
        self._by_name: dict[str, _Open] = {}
        self._entries: list[_Open] = []
        self._current: _Open | None = None
        self.lines: list[str] = []  # the current case's output list (a sink when there is none)

    @property
    def current(self) -> CaseResult | None:
        return self._current.case if self._current else None

    @property
    def current_unfinished(self) -> bool:
        return self._current is not None and not self._current.verdict_seen

    def start(self, name: str, ts: float | None) -> None:
        cur = self._current
        if cur is not None and not cur.verdict_seen:
            self._flush_current()
        entry = _Open(CaseResult(name, "failed"), ts)
        # _register and _set_current inlined: this runs once per test
        self.cases.append(entry.case)
        self._entries.append(entry)
        self._by_name[name] = entry
        self._current = entry
        self.lines = entry.lines

    def verdict(self, name: str, outcome: Outcome, message: str, ts: float | None) -> CaseResult:
        """Record a verdict; a verdict for a case never started creates it."""
        entry = self._by_name.get(name)
        if entry is None:
            self._flush_current()
            entry = _Open(CaseResult(name, outcome), None)
            self._register(entry)
            self._set_current(entry)
        case = entry.case
        if not entry.verdict_seen or _RANK[outcome] >= _RANK[case.outcome]:
            if entry.verdict_seen and message and case.message and message != case.message:
                message = f"{case.message}; {message}"
            case.outcome = outcome
            case.message = message or case.message
        entry.verdict_seen = True
        if entry.start is not None and ts is not None:
            case.duration = max(0.0, ts - entry.start)
        return case

    def get(self, name: str) -> CaseResult | None:
        entry = self._by_name.get(name)
        return entry.case if entry else None

    def has_verdict(self, name: str) -> bool:
        entry = self._by_name.get(name)
        return bool(entry and entry.verdict_seen)

    def finish_unfinished(self, message: str, ts: float | None) -> CaseResult | None:
        """The running case at the end of the output fails: it never got a verdict."""
        cur = self._current
        if cur is None or cur.verdict_seen:
            return None
        self.verdict(cur.case.name, "failed", message, ts)
        return cur.case

    def add(self, case: CaseResult) -> None:
        """Append a finished case (synthetic results); later output goes nowhere."""
        self._flush_current()
        entry = _Open(case, None)
        entry.verdict_seen = True
        self._register(entry)
        self._current = None
        self.lines = []

    def close(self) -> list[CaseResult]:
        self._flush_current()
        self._current = None
        self.lines = []
        for entry in self._entries:
            if entry.lines:
                self._write_output(entry)
        return self.cases

    def _set_current(self, entry: _Open) -> None:
        self._current = entry
        self.lines = entry.lines

    def _register(self, entry: _Open) -> None:
        self.cases.append(entry.case)
        self._entries.append(entry)
        self._by_name[entry.case.name] = entry

    def _flush_current(self) -> None:
        cur = self._current
        if cur is not None and not cur.verdict_seen:
            cur.verdict_seen = True
            cur.case.outcome = "failed"
            cur.case.message = "no verdict printed before the next test started"

    @staticmethod
    def _write_output(entry: _Open) -> None:
        lines = entry.lines
        dropped = max(0, len(lines) - MAX_CASE_LINES)
        text = "\n".join(lines[dropped:]).strip("\n")
        if len(text) > MAX_CASE_CHARS:
            cut = len(text) - MAX_CASE_CHARS
            text = f"[... {cut} earlier characters omitted ...]\n{text[cut:]}"
        if dropped:
            text = f"[... {dropped} earlier lines omitted ...]\n{text}"
        entry.case.output = text
        entry.lines = []
