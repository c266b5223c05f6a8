"""bannou's edge-tester console output (daemon mode) -> per-test results.

Markers (see testers-format.md): ``📋 Running: NAME`` starts a test and the lines up to its
verdict are its own output; verdicts ``✅ Test NAME PASSED``, ``❌ Test NAME FAILED``,
``❌ Test NAME FAILED with exception: MSG``, ``⚠️ Test NAME completed (result unclear)``; the
``📊 TEST SUMMARY`` block (Total / Passed / Failed and the failed tests list) is cross-checked.

A run that ends before the summary (crash, timeout, kill) reports the unfinished test as failed
and the remaining registered tests as not run (with generated names: edge-tester prints names
only as it runs them).
"""

from __future__ import annotations

import re

from .base import ConsoleParser, check_exit_status, incomplete_case, output_end
from .lines import split_lines
from .model import INCOMPLETE_CASE, CaseResult, Outcome, TesterRun
from .tracker import CaseTracker, exception_message

FORMAT = "edge-tester"

_RUNNING = re.compile(r"^📋 Running:\s*(.+?)\s*$")
_REGISTERED = re.compile(r"^Total tests registered:\s*(\d+)")
_PASSED = re.compile(r"^✅ Test (.+) PASSED$")
_FAILED_EXC = re.compile(r"^❌ Test (.+?) FAILED with exception(?::\s?(.*))?$")
_FAILED = re.compile(r"^❌ Test (.+) FAILED$")
_UNCLEAR = re.compile(r"^⚠\ufe0f?\s*Test (.+) completed \(result unclear\)$")
_SUMMARY_COUNT = re.compile(r"^(Total|Passed|Failed):\s*(\d+)\s*$")
_SEPARATOR_CHARS = "━─═=-"
_SEPARATOR_STARTS = frozenset(_SEPARATOR_CHARS)
_MARKER_STARTS = frozenset("📋✅❌⚠📊")
# verdict lines by first character: (pattern, outcome, message; None: the exception's detail)
_VERDICTS: dict[str, tuple[tuple[re.Pattern[str], Outcome, str | None], ...]] = {
    "✅": ((_PASSED, "passed", ""),),
    "❌": ((_FAILED_EXC, "failed", None), (_FAILED, "failed", "edge-tester reported FAILED")),
    "⚠": ((_UNCLEAR, "unclear", "completed (result unclear)"),),
}


def not_run_name(index: int) -> str:
    """Generated name of the ``index``-th (1-based) registered test that never started."""
    return f"(not run #{index})"


class EdgeTesterParser(ConsoleParser):
    format = FORMAT

    def _parse(self, text: str, exit_code: int | None, tester: str | None) -> TesterRun:
        run = TesterRun(tester or FORMAT, FORMAT, exit_code=exit_code)
        cases = CaseTracker()
        registered: int | None = None
        in_summary = False
        in_failed_list = False
        totals: dict[str, int] = {}
        failed_list: list[str] = []

        lines, stamps = split_lines(text, _MARKER_STARTS)
        separator = None  # the last separator line seen: edge-tester prints the same one twice a test
        for i, raw in enumerate(lines):
            if raw == separator:
                continue
            # markers are matched unindented: a test's own (indented) lines can never pose as one
            s = raw.rstrip()
            if not s:
                if not in_summary:
                    cases.lines.append("")
                continue
            first = s[0]
            if first == " " or first == "\t":
                stripped = s.lstrip()
                first_stripped = stripped[0]
            else:
                stripped, first_stripped = s, first
            if (
                first_stripped in _SEPARATOR_STARTS
                and not stripped.strip(_SEPARATOR_CHARS)
                and len(stripped) >= 8
            ):
                separator = raw
                continue
            if in_summary:
                s = stripped
                m = _SUMMARY_COUNT.match(s)
                if m:
                    totals[m.group(1).lower()] = int(m.group(2))
                    continue
                if s.startswith("❌ Failed tests"):
                    in_failed_list = True
                    continue
                if in_failed_list and s.startswith("- "):
                    failed_list.append(s[2:].strip())
                    continue
                in_failed_list = False
                continue  # after the summary only noise can follow
            if first not in _MARKER_STARTS and first_stripped != "T":
                cases.lines.append(raw)
                continue
            ts = stamps[i] if stamps is not None else None
            if first == "📋":
                m = _RUNNING.match(s)
                if m:
                    cases.start(m.group(1), ts)
                    continue
            elif first in _VERDICTS:
                for regex, outcome, message in _VERDICTS[first]:
                    m = regex.match(s)
                    if m:
                        if message is None:  # "FAILED with exception[: detail]"
                            message = exception_message((m.group(2) or "").strip())
                        cases.verdict(m.group(1), outcome, message, ts)
                        cases.lines.append(raw)
                        break
                else:
                    cases.lines.append(raw)
                continue
            elif first == "📊" and s.startswith("📊 TEST SUMMARY"):
                in_summary = True
                cases.finish_unfinished("no verdict printed before the TEST SUMMARY", ts)
                continue
            elif first_stripped == "T":
                m = _REGISTERED.match(stripped)
                if m:
                    registered = int(m.group(1))
                    run.summary["registered"] = registered
                    continue
            cases.lines.append(raw)

        raw_tail, last_ts = output_end(lines, stamps)
        if in_summary:
            run.summary.update(totals)
            run.summary["failed_tests"] = failed_list
        else:
            why = "run ended before a verdict (no TEST SUMMARY: the tester crashed, timed out or was killed)"
            if exit_code not in (None, 0):
                why += f"; exit code {exit_code}"
            unfinished = cases.finish_unfinished(why, last_ts)
            if unfinished is None and cases.cases and exit_code != 0:
                cases.add(incomplete_case("the TEST SUMMARY", raw_tail))
            elif unfinished is None and cases.cases:
                run.warnings.append("no TEST SUMMARY although the tester exited 0")
        run.cases = cases.close()
        self._cross_check(run, in_summary, totals, failed_list, registered)
        run.raw_tail = raw_tail
        for c in run.cases:
            if c.outcome == "unclear":
                run.warnings.append(
                    f"edge-tester test {c.name!r} completed with an unclear result (upstream counts it"
                    " as passed)"
                )
        check_exit_status(run, text, raw_tail)
        return run

    @staticmethod
    def _cross_check(
        run: TesterRun,
        in_summary: bool,
        totals: dict[str, int],
        failed_list: list[str],
        registered: int | None,
    ) -> None:
        by_name = {c.name: c for c in run.cases}
        for name in failed_list:
            case = by_name.get(name)
            if case is None:
                case = CaseResult(name, "failed", None, "listed under 'Failed tests' in the TEST SUMMARY")
                run.cases.append(case)
                by_name[name] = case
            elif not case.is_failure:
                run.warnings.append(
                    f"test {name!r} printed {case.outcome} but the TEST SUMMARY lists it as failed"
                )
                case.outcome = "failed"
                case.message = "listed under 'Failed tests' in the TEST SUMMARY" + (
                    f" ({case.message})" if case.message else ""
                )
        total = totals.get("total", registered)
        named = sum(1 for c in run.cases if c.name not in (INCOMPLETE_CASE,))
        if total is not None and total > named:
            missing = total - named
            for i in range(1, missing + 1):
                run.cases.append(
                    CaseResult(
                        not_run_name(i),
                        "not_run",
                        None,
                        f"{total} tests registered, {named} seen in the output: this one never started",
                    )
                )
        if in_summary:
            if "passed" in totals:
                seen = run.count("passed", "unclear")
                if seen != totals["passed"]:
                    run.warnings.append(
                        f"TEST SUMMARY says Passed: {totals['passed']} but the output shows {seen} passed"
                    )
            if "failed" in totals:
                seen = run.count("failed", "error")
                if seen != totals["failed"]:
                    run.warnings.append(
                        f"TEST SUMMARY says Failed: {totals['failed']} but the output shows {seen} failed"
                    )
