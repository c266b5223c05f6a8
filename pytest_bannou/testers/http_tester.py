"""bannou's http-tester console output (daemon mode) -> per-test results.

Markers (see testers-format.md): ``Running test: X``, ``✅ Test X completed successfully: m``,
``❌ Test X failed: m``, ``❌ Test X failed with exception: m``, ``🚨 FATAL: Service crash
detected in test 'X'``, ``All tests completed in daemon mode. Passed: P, Failed: F``. Everything
else is log noise that belongs to the running test's output.

Exit 139 (or the FATAL line) means the run stopped at the crashing test: it fails, and the tests
after it never started. http-tester announces tests one at a time, so their names are unknown:
they are reported as one ``not_run`` entry that says so.
"""

from __future__ import annotations

import re

from .base import ConsoleParser, check_exit_status, incomplete_case, output_end
from .lines import split_lines
from .model import CaseResult, TesterRun
from .tracker import CaseTracker, exception_message

FORMAT = "http-tester"
CRASH_EXIT = 139

_RUNNING = "Running test: "
_OK = "✅ Test "
_FAIL = "❌ Test "
_FATAL = re.compile(r"^🚨 FATAL: Service crash detected in test '(.*)'")
_DONE = re.compile(r"^All tests completed in daemon mode\.\s*Passed:\s*(\d+),\s*Failed:\s*(\d+)")
_OK_RE = re.compile(r"^✅ Test (.+?) completed successfully(?::\s?(.*))?$")
_FAIL_EXC_RE = re.compile(r"^❌ Test (.+?) failed with exception(?::\s?(.*))?$")
_FAIL_RE = re.compile(r"^❌ Test (.+?) failed(?::\s?(.*))?$")
_RETURNING = re.compile(r"^❌ \d+ test\(s\) failed - returning exit code")
_MARKER_STARTS = frozenset("R✅❌🚨A")


def not_started_name(crashed_in: str) -> str:
    return f"(tests after {crashed_in!r})"


class HttpTesterParser(ConsoleParser):
    format = FORMAT

    def _parse(self, text: str, exit_code: int | None, tester: str | None) -> TesterRun:
        run = TesterRun(tester or FORMAT, FORMAT, exit_code=exit_code)
        cases = CaseTracker()
        crashed_in: str | None = None
        done = False

        lines, stamps = split_lines(text, _MARKER_STARTS)
        for i, raw in enumerate(lines):
            # markers are matched unindented: indented message lines can never pose as one
            s = raw.rstrip()
            if not s:
                cases.lines.append(raw)
                continue
            first = s[0]
            if first not in _MARKER_STARTS:
                cases.lines.append(raw)
                continue
            ts = stamps[i] if stamps is not None else None
            if first == "R":
                if s.startswith(_RUNNING):
                    cases.start(s[len(_RUNNING) :].strip(), ts)
                    continue
            elif first == "✅" or first == "❌":
                if s.startswith(_OK) or s.startswith(_FAIL):
                    if self._verdict(cases, s, ts):
                        cases.lines.append(raw)
                        continue
                elif _RETURNING.match(s):
                    continue
            elif first == "🚨":
                m = _FATAL.match(s)
                if m:
                    crashed_in = m.group(1)
                    self._crash(cases, crashed_in, ts)
                    cases.lines.append(raw)
                    continue
            elif first == "A":
                m = _DONE.match(s)
                if m:
                    done = True
                    run.summary["passed"] = int(m.group(1))
                    run.summary["failed"] = int(m.group(2))
                    cases.finish_unfinished("no verdict printed before the summary", ts)
                    continue
            cases.lines.append(raw)

        raw_tail, last_ts = output_end(lines, stamps)
        if cases.current_unfinished:
            why = "run ended before a verdict"
            if exit_code == CRASH_EXIT:
                why += f" (exit code {CRASH_EXIT}: service crash)"
            elif exit_code not in (None, 0):
                why += f" (exit code {exit_code})"
            unfinished = cases.finish_unfinished(why, last_ts)
            if crashed_in is None and exit_code == CRASH_EXIT and unfinished is not None:
                crashed_in = unfinished.name
        elif not done and cases.cases and crashed_in is None and exit_code != 0:
            cases.add(incomplete_case("'All tests completed in daemon mode'", raw_tail))
        elif not done and cases.cases and crashed_in is None:
            run.warnings.append("no 'All tests completed in daemon mode' line although the tester exited 0")
        if crashed_in is not None:
            run.summary["crashed_in"] = crashed_in
            cases.add(
                CaseResult(
                    not_started_name(crashed_in),
                    "not_run",
                    None,
                    f"http-tester stopped at the service crash in {crashed_in!r}; the tests after it never"
                    " started (http-tester names tests only as it starts them, so they are not listed)",
                )
            )
        run.cases = cases.close()
        run.raw_tail = raw_tail
        self._cross_check(run, done)
        check_exit_status(run, text, raw_tail)
        return run

    @staticmethod
    def _verdict(cases: CaseTracker, s: str, ts: float | None) -> bool:
        """Record a verdict line; the running test's name is tried first so names that contain
        ' failed' or ': ' still split at the right place."""
        cur = cases.current
        if cur is not None:
            name = cur.name
            for prefix, outcome in (
                (f"✅ Test {name} completed successfully", "passed"),
                (f"❌ Test {name} failed with exception", "failed"),
                (f"❌ Test {name} failed", "failed"),
            ):
                if s.startswith(prefix):
                    rest = s[len(prefix) :]
                    if rest and not rest.startswith(":"):
                        continue
                    message = rest[1:].strip()
                    if "with exception" in prefix:
                        message = exception_message(message)
                    cases.verdict(name, outcome, message, ts)  # type: ignore[arg-type]
                    return True
        for regex, outcome in ((_OK_RE, "passed"), (_FAIL_EXC_RE, "failed"), (_FAIL_RE, "failed")):
            m = regex.match(s)
            if m:
                message = (m.group(2) or "").strip()
                if regex is _FAIL_EXC_RE:
                    message = exception_message(message)
                cases.verdict(m.group(1), outcome, message, ts)  # type: ignore[arg-type]
                return True
        return False

    @staticmethod
    def _crash(cases: CaseTracker, name: str, ts: float | None) -> None:
        case = cases.get(name)
        note = f"service crash detected (fail-fast, exit code {CRASH_EXIT})"
        if case is None or not cases.has_verdict(name):
            cases.verdict(name, "failed", note, ts)
            return
        case.outcome = "failed"
        case.message = f"{note}: {case.message}" if case.message else note

    @staticmethod
    def _cross_check(run: TesterRun, done: bool) -> None:
        if not done:
            return
        passed, failed = run.summary["passed"], run.summary["failed"]
        seen_passed = run.count("passed")
        seen_failed = run.count("failed", "error")
        if (passed, failed) != (seen_passed, seen_failed):
            run.warnings.append(
                f"http-tester's summary says Passed: {passed}, Failed: {failed} but the output shows"
                f" {seen_passed} passed and {seen_failed} failed test(s)"
            )
