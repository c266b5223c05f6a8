"""JUnit XML written by a tester -> per-test results.

The XML comes from a process we do not control, so it is parsed defensively: documents with a
DTD or entity declarations are rejected before parsing (no entity expansion, no external
fetches), and malformed XML becomes an ``error`` case instead of an exception.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

from .base import check_exit_status
from .model import CaseResult, TesterRun

FORMAT = "junit"
INVALID_CASE = "(invalid junit)"

_DTD = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def _float(value: str | None) -> float | None:
    """A number attribute; ``nan``, ``inf`` and ``1e999`` are not numbers a tester reports."""
    try:
        number = float(value) if value not in (None, "") else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def _text(el: ET.Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


class JUnitParser:
    format = FORMAT

    def parse(self, text: str, exit_code: int | None = None, *, tester: str | None = None) -> TesterRun:
        run = TesterRun(tester or FORMAT, FORMAT, exit_code=exit_code)
        run.raw_tail = text[-4000:]
        if not text.strip():
            check_exit_status(run, text, "")
            run.cases[0].message = "no JUnit XML: the file is empty"
            return run
        if _DTD.search(text):
            run.cases.append(
                CaseResult(
                    INVALID_CASE, "error", None, "JUnit XML with a DTD or entity declarations is refused"
                )
            )
            return run
        try:
            # lone surrogates (text decoded with surrogateescape) cannot be fed to expat
            root = ET.fromstring(text.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))
        except ET.ParseError as exc:
            run.cases.append(CaseResult(INVALID_CASE, "error", None, f"malformed JUnit XML: {exc}"))
            return run
        suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
        if root.tag not in ("testsuite", "testsuites"):
            run.cases.append(
                CaseResult(INVALID_CASE, "error", None, f"not JUnit XML: root element is <{root.tag}>")
            )
            return run
        for key in ("tests", "failures", "errors", "skipped"):
            total = sum(int(_float(s.get(key)) or 0) for s in suites)
            run.summary[key] = total
        for suite in suites:
            for tc in suite.findall("testcase"):
                run.cases.append(self._case(tc))
        check_exit_status(run, text, run.raw_tail)
        return run

    @staticmethod
    def _case(tc: ET.Element) -> CaseResult:
        name = tc.get("name", "")
        classname = tc.get("classname", "")
        full = f"{classname}.{name}" if classname else name
        outcome = "passed"
        message = ""
        details = ""
        for tag, result in (("error", "error"), ("failure", "failed"), ("skipped", "not_run")):
            el = tc.find(tag)
            if el is not None:
                outcome = result
                details = _text(el)
                message = el.get("message") or (details.splitlines()[0] if details else tag)
                break
        output = "\n".join(
            part for part in (details, _text(tc.find("system-out")), _text(tc.find("system-err"))) if part
        )
        return CaseResult(full, outcome, _float(tc.get("time")), message, output)  # type: ignore[arg-type]
