"""A tester judged only by its exit code: one result named after the tester."""

from __future__ import annotations

from .lines import iter_lines, tail
from .model import CaseResult, TesterRun

FORMAT = "exit-code"


class ExitCodeParser:
    format = FORMAT

    def parse(self, text: str, exit_code: int | None = None, *, tester: str | None = None) -> TesterRun:
        name = tester or FORMAT
        lines = [ln.text for ln in iter_lines(text[-200_000:])]
        out = tail(lines, max_lines=200, max_chars=20000).strip("\n")
        if exit_code == 0:
            case = CaseResult(name, "passed", None, "", out)
        elif exit_code is None:
            case = CaseResult(name, "error", None, "exit code unknown: pass the tester's exit status", out)
        else:
            case = CaseResult(name, "failed", None, f"exited with code {exit_code}", out)
        return TesterRun(name, FORMAT, [case], exit_code, {}, [], tail(lines))
