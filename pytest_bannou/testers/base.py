"""The parser interface and the checks every format shares (exit status, empty output).

A parser turns one tester's output (console text, or the JUnit XML it wrote) plus its exit code
into a ``TesterRun``. Parsers never raise on bad output: garbage, empty or truncated output is a
result (an ``error`` case that says what was wrong), so one bad tester cannot crash a session.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .interactive import DAEMON_HINT, looks_interactive
from .model import EXIT_STATUS_CASE, NO_RESULTS_CASE, SETUP_CASE, CaseResult, TesterRun


@runtime_checkable
class TesterParser(Protocol):
    format: str

    def parse(self, text: str, exit_code: int | None = None, *, tester: str | None = None) -> TesterRun:
        """Parse ``text``; ``exit_code`` None means unknown (a saved log without its status)."""
        ...


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
