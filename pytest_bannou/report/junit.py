"""junit.xml for CI dashboards: one testsuite per environment, preset and backend on every case.

CI tools (GitLab, Jenkins, GitHub annotations) group and filter by per-testcase properties, so
each case carries ``preset``, ``env_key``, ``backend``, ``kind`` and ``outcome`` as <properties>.
Outcomes with no JUnit counterpart map conservatively: ``not_run`` is a skip with
type="not_run"; ``unclear`` is a pass whose warning goes to <system-out>.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from .._support.files import atomic_write
from .._support.text import xml_text
from .model import NO_PRESET, PresetRecord, RunReport, TestRecord


def split_nodeid(record: TestRecord) -> tuple[str, str]:
    """(classname, name) as pytest's own junitxml names them; tester cases keep their full name."""
    if record.kind == "tester":
        return f"tester.{record.tester or 'unknown'}", record.nodeid
    parts = record.nodeid.split("::")
    if len(parts) == 1:
        return "", parts[0]
    module = parts[0].removesuffix(".py").replace("/", ".").replace("\\", ".")
    return ".".join([module, *parts[1:-1]]), parts[-1]


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return xml_text(line.strip())[:300]
    return ""


def _testcase(record: TestRecord, preset: PresetRecord | None, report: RunReport) -> ET.Element:
    classname, name = split_nodeid(record)
    case = ET.Element("testcase", classname=xml_text(classname), name=xml_text(name))
    case.set("time", f"{record.duration or 0.0:.3f}")
    props = ET.SubElement(case, "properties")
    values = {
        "preset": preset.preset if preset else (record.preset or ""),
        "env_key": record.preset or "",
        "backend": (preset.backend if preset and preset.backend else report.backend),
        "preset_hash": preset.preset_hash if preset else "",
        "kind": record.kind,
        "tester": record.tester or "",
        "outcome": record.outcome,
        "ci_job": report.ci_job or "",
    }
    for key, value in values.items():
        if value:
            ET.SubElement(props, "property", name=key, value=xml_text(value))
    detail = xml_text(record.longrepr_summary)
    message = _first_line(record.longrepr_summary)
    if record.outcome == "failed":
        ET.SubElement(case, "failure", message=message).text = detail
    elif record.outcome == "error":
        ET.SubElement(case, "error", message=message).text = detail
    elif record.outcome == "skipped":
        ET.SubElement(case, "skipped", message=message).text = detail or None
    elif record.outcome == "not_run":
        el = ET.SubElement(case, "skipped", type="not_run", message=message or "not run")
        el.text = detail or None
    if record.warnings or (record.outcome == "unclear" and detail):
        lines = [f"warning: {w}" for w in record.warnings]
        if record.outcome == "unclear" and detail:
            lines.append(detail)
        ET.SubElement(case, "system-out").text = xml_text("\n".join(lines))
    return case


def build_junit(report: RunReport) -> ET.ElementTree:
    """The junit.xml tree of ``report``: <testsuites> with one <testsuite> per environment."""
    presets = {p.env_key: p for p in report.presets}
    groups: dict[str | None, list[TestRecord]] = {}
    for record in report.tests:
        groups.setdefault(record.preset, []).append(record)
    root = ET.Element("testsuites", name="pytest-bannou")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    total_time = 0.0
    order = [p.env_key for p in report.presets if p.env_key in groups]
    order += [k for k in groups if k not in order]
    for key in order:
        records = groups[key]
        preset = presets.get(key) if key else None
        counts = {
            "tests": len(records),
            "failures": sum(r.outcome == "failed" for r in records),
            "errors": sum(r.outcome == "error" for r in records),
            "skipped": sum(r.outcome in ("skipped", "not_run") for r in records),
        }
        suite_time = sum(r.duration or 0.0 for r in records)
        suite = ET.SubElement(root, "testsuite", name=xml_text(f"bannou[{key or NO_PRESET}]"))
        for attr, value in counts.items():
            suite.set(attr, str(value))
            totals[attr] += value
        suite.set("time", f"{suite_time:.3f}")
        total_time += suite_time
        props = ET.SubElement(suite, "properties")
        suite_props = {
            "run_id": report.run_id,
            "backend": (preset.backend if preset and preset.backend else report.backend),
            "preset": preset.preset if preset else (key or ""),
            "preset_hash": preset.preset_hash if preset else "",
            "ci_job": report.ci_job or "",
        }
        for name, value in suite_props.items():
            if value:
                ET.SubElement(props, "property", name=name, value=xml_text(value))
        for record in records:
            suite.append(_testcase(record, preset, report))
    for attr, value in totals.items():
        root.set(attr, str(value))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root, space=" ")
    return ET.ElementTree(root)


def write_junit(report: RunReport, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(
        path, ET.tostring(build_junit(report).getroot(), encoding="utf-8", xml_declaration=True), 0o666
    )
    return path
