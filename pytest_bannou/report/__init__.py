"""Aggregated results: results.json, junit.xml and report.html for one run or a merge of runs.

A library with its own data model (``model``); the plugin feeds it through ``ReportCollector``,
the tester parsers produce ``TestRecord``s, the CLI merges and re-renders files. No pytest here.
"""

from __future__ import annotations

import os
from pathlib import Path

from .collector import ReportCollector, merge_partials, read_partials, tester_records, write_partial
from .html import render_html, write_html
from .json_io import ReportFileError, read_json, write_json
from .junit import build_junit, write_junit
from .merge import merge_reports
from .model import (
    OUTCOMES,
    SCHEMA_VERSION,
    FaultRecord,
    PresetRecord,
    RunReport,
    TestRecord,
    TimelineEvent,
    matrix_row,
    tester_nodeid,
)
from .terminal import render_terminal, summary_line

RESULTS_JSON = "results.json"
JUNIT_XML = "junit.xml"
REPORT_HTML = "report.html"


def write_report(report: RunReport, directory: str | os.PathLike[str]) -> dict[str, Path]:
    """Write results.json, junit.xml and report.html into ``directory`` (created if missing)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return {
        "json": write_json(report, directory / RESULTS_JSON),
        "junit": write_junit(report, directory / JUNIT_XML),
        "html": write_html(report, directory / REPORT_HTML),
    }


__all__ = [
    "JUNIT_XML",
    "OUTCOMES",
    "REPORT_HTML",
    "RESULTS_JSON",
    "SCHEMA_VERSION",
    "FaultRecord",
    "PresetRecord",
    "ReportCollector",
    "ReportFileError",
    "RunReport",
    "TestRecord",
    "TimelineEvent",
    "build_junit",
    "matrix_row",
    "merge_partials",
    "merge_reports",
    "read_json",
    "read_partials",
    "render_html",
    "render_terminal",
    "summary_line",
    "tester_nodeid",
    "tester_records",
    "write_html",
    "write_json",
    "write_junit",
    "write_partial",
    "write_report",
]
