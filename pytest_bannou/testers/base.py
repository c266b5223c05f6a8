"""The parser interface and the checks every format shares (exit status, empty output).

A parser turns one tester's output (console text, or the JUnit XML it wrote) plus its exit code
into a ``TesterRun``. Parsers never raise on bad output: garbage, empty or truncated output is a
result (an ``error`` case that says what was wrong), so one bad tester cannot crash a session.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .interactive import DAEMON_HINT, looks_interactive
from .lines import tail
from .model import EXIT_STATUS_CASE, INCOMPLETE_CASE, NO_RESULTS_CASE, SETUP_CASE, CaseResult, TesterRun
from .tracker import gc_paused


@runtime_checkable
class TesterParser(Protocol):
    format: str

    def parse(self, text: str, exit_code: int | None = None, *, tester: str | None = None) -> TesterRun:
        """Parse ``text``; ``exit_code`` None means unknown (a saved log without its status)."""
        ...


class ConsoleParser:
    """What the console formats share: ``parse`` runs the format's ``_parse`` with the cyclic GC
    paused (see ``gc_paused``)."""

    format: str

    def parse(self, text: str, exit_code: int | None = None, *, tester: str | None = None) -> TesterRun:
        with gc_paused():
            return self._parse(text, exit_code, tester)

    def _parse(self, text: str, exit_code: int | None, tester: str | None) -> TesterRun:
        raise NotImplementedError


def output_end(lines: list[str], stamps: list[float | None] | None) -> tuple[str, float | None]:
    """The end of a console output: its last non-blank lines (the run's ``raw_tail``) and its
    last timestamp (when the run was cut short, the unfinished test's end)."""
    last = [ln for ln in lines[-200:] if ln.strip()][-60:]
    last_ts = next((t for t in reversed(stamps) if t is not None), None) if stamps else None
    return tail(last), last_ts


def incomplete_case(missing: str, raw_tail: str) -> CaseResult:
    """The error for an output that ends between tests, before ``missing`` (the format's end line)."""
    return CaseResult(
        INCOMPLETE_CASE,
        "error",
        None,
        f"the output ends before {missing} (the tester was killed, crashed or the log is truncated)",
        raw_tail,
    )


def check_exit_status(run: TesterRun, text: str, tail: str) -> None:
    """Make the exit status and the parsed cases agree (shared by every console format).

    - no case at all: a setup failure (non-zero exit) or "no results" (with the menu hint when
      the output is an interactive menu);
    - non-zero exit yet nothing failed: an error case, the exit code is the tester's verdict;
    - zero exit with failures: the failures stand, with a warning.
    """
    code = run.exit_code
    interactive = looks_interactive(text) if not run.cases else False
    if not run.cases:
        if interactive:
            message = DAEMON_HINT
        elif code not in (None, 0):
            message = f"the tester exited with code {code} before any test ran"
        elif text.strip():
            message = f"no {run.format} test results found in the output (wrong format, or a setup failure?)"
        else:
            message = "the tester printed nothing"
        name = SETUP_CASE if code not in (None, 0) else NO_RESULTS_CASE
        run.cases.append(CaseResult(name, "error", None, message, tail))
        return
    if code not in (None, 0) and run.failed == 0:
        run.cases.append(
            CaseResult(
                EXIT_STATUS_CASE,
                "error",
                None,
                f"the tester exited with code {code} although no test failed",
                tail,
            )
        )
    elif code == 0 and run.failed:
        run.warnings.append(f"the tester exited with code 0 although {run.failed} test(s) failed")
