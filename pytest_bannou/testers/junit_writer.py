"""A ``TesterRun`` as a JUnit XML document (for ``bannou-env testers parse --junit``).

Every text goes through the reports' ``xml_text``: the file is well-formed UTF-8 XML whatever
the tester printed (surrogates, U+FFFE/U+FFFF, controls).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from .._support.text import xml_text
from .model import TesterRun


def to_junit(run: TesterRun) -> ET.ElementTree:
    suite = ET.Element(
        "testsuite",
        {
            "name": xml_text(run.tester),
            "tests": str(len(run.cases)),
            "failures": str(run.count("failed")),
            "errors": str(run.count("error")),
            "skipped": str(run.not_run),
            "time": f"{sum(c.duration or 0.0 for c in run.cases):.3f}",
        },
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", {"name": "format", "value": xml_text(run.format)})
    if run.exit_code is not None:
        ET.SubElement(props, "property", {"name": "exit_code", "value": str(run.exit_code)})
    for warning in run.warnings:
        ET.SubElement(props, "property", {"name": "warning", "value": xml_text(warning)})
    for case in run.cases:
        attrs = {"classname": xml_text(f"tester.{run.tester}"), "name": xml_text(case.name)}
        if case.duration is not None:
            attrs["time"] = f"{case.duration:.3f}"
        tc = ET.SubElement(suite, "testcase", attrs)
        if case.outcome == "unclear":
            cprops = ET.SubElement(tc, "properties")
            ET.SubElement(cprops, "property", {"name": "outcome", "value": "unclear"})
        tag = {"failed": "failure", "error": "error", "not_run": "skipped"}.get(case.outcome)
        if tag:
            el = ET.SubElement(tc, tag, {"message": xml_text(case.message or case.outcome)})
            if tag != "skipped" and case.output:
                el.text = xml_text(case.output)
        if case.output:
            ET.SubElement(tc, "system-out").text = xml_text(case.output)
    tree = ET.ElementTree(suite)
    ET.indent(tree)
    return tree


def write_junit(run: TesterRun, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    to_junit(run).write(path, encoding="utf-8", xml_declaration=True)
