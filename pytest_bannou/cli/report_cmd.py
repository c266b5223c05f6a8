"""``bannou-env report``: merge results.json files (CI matrix jobs) and re-render report files."""

from __future__ import annotations

import argparse
from pathlib import Path

from .._support.text import terminal_text
from ..errors import BannouError
from ..report import RESULTS_JSON, RunReport, merge_reports, read_json, write_report
from ._output import unwritable


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="merge and render aggregated results (results.json, junit.xml, report.html)",
        description="Merge results.json files of several runs (CI matrix jobs, xdist workers) or"
        " re-render one, writing results.json, junit.xml and report.html into a directory.",
    )
    sub = parser.add_subparsers(dest="report_command", metavar="SUBCOMMAND")
    sub.required = True
    merge = sub.add_parser(
        "merge",
        help="merge several results.json into one report",
        description="Merge results.json files (or directories holding one) into one report.",
    )
    merge.add_argument(
        "inputs", nargs="+", metavar="RESULTS", help="results.json files or report directories"
    )
    merge.add_argument("-o", "--output", required=True, metavar="DIR", help="directory to write into")
    merge.set_defaults(handler=_merge)
    render = sub.add_parser(
        "render",
        help="write junit.xml and report.html (and a normalised results.json) from one results.json",
        description="Render one results.json into results.json, junit.xml and report.html.",
    )
    render.add_argument("input", metavar="RESULTS", help="a results.json file or a report directory")
    render.add_argument("-o", "--output", required=True, metavar="DIR", help="directory to write into")
    render.set_defaults(handler=_render)


def _resolve(path: str) -> Path:
    candidate = Path(path)
    try:
        is_dir = candidate.is_dir()
    except OSError:  # a name too long to be one: reading it says why
        is_dir = False
    if is_dir:
        inner = candidate / RESULTS_JSON
        if not inner.is_file():
            raise BannouError(
                f"{candidate}: a directory without {RESULTS_JSON}; pass the results file itself"
            )
        return inner
    return candidate


def _write(report: RunReport, output: str) -> dict[str, Path]:
    """The three report files in ``output``; a place that cannot be written is one clear error."""
    try:
        return write_report(report, output)
    except OSError as exc:
        raise unwritable("the report into", output, exc, "pass a writable directory with -o") from None


def _print_written(paths: dict[str, Path], what: str) -> None:
    """What was written; names come from the files, so they are printed control-free."""
    print(terminal_text(what))
    for path in paths.values():
        print(f"  {terminal_text(str(path))}")


def _merge(args: argparse.Namespace) -> int:
    reports = [read_json(_resolve(p)) for p in args.inputs]
    merged = merge_reports(reports)
    paths = _write(merged, args.output)
    counts = merged.counts()
    summary = ", ".join(f"{n} {o.replace('_', ' ')}" for o, n in counts.items() if n) or "no results"
    _print_written(paths, f"merged {len(reports)} reports ({len(merged.presets)} environments, {summary}):")
    return 0


def _render(args: argparse.Namespace) -> int:
    report = read_json(_resolve(args.input))
    paths = _write(report, args.output)
    _print_written(paths, f"rendered {len(report.tests)} results of run {report.run_id}:")
    return 0
