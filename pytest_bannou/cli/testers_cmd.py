"""``bannou-env testers parse``: parse a saved tester log (a CI log, say) with the same parsers
the plugin uses, without any environment."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import BannouError
from ..testers import known_formats
from ..testers.junit_writer import write_junit
from ..testers.model import TesterRun, escape_controls
from ..testers.registry import get_parser
from ._output import unwritable

_LABELS = {
    "passed": "PASSED",
    "failed": "FAILED",
    "error": "FAILED",
    "not_run": "NOT RUN",
    "unclear": "UNCLEAR",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    testers = subparsers.add_parser("testers", help="work with tester suites' output")
    sub = testers.add_subparsers(dest="testers_command", metavar="SUBCOMMAND")
    sub.required = True
    parse = sub.add_parser(
        "parse",
        help="parse a saved tester log into per-test results",
        description="Parse a saved tester log. Prints one line per test, then 'N passed, N failed'."
        " Exit status 0 only when nothing failed.",
    )
    parse.add_argument("--format", required=True, help=f"output format: {', '.join(known_formats())}")
    parse.add_argument("file", metavar="FILE", help="the log (or JUnit XML) file; '-' reads stdin")
    parse.add_argument("--json", action="store_true", help="print the result as JSON instead")
    parse.add_argument("--junit", metavar="OUT", type=Path, help="also write a JUnit XML file")
    parse.add_argument("--exit-code", type=int, default=None, help="the tester's exit status, when known")
    parse.add_argument("--tester", default=None, help="tester name for the results (default: the format)")
    parse.set_defaults(handler=_parse)


def _read(file: str) -> str:
    if file == "-":
        data = sys.stdin.buffer.read()
    else:
        path = Path(file)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BannouError(f"cannot read tester log {file}: {exc.strerror or exc}") from None
    return data.decode("utf-8", errors="replace")


def _parse(args: argparse.Namespace) -> int:
    parser = get_parser(args.format)
    text = _read(args.file)
    run: TesterRun = escape_controls(parser.parse(text, args.exit_code, tester=args.tester))
    if args.json:
        print(json.dumps(run.to_dict(), indent=2, ensure_ascii=False))
    else:
        for case in run.cases:
            print(f"{_LABELS[case.outcome]} {case.name}")
        print(run.counts_line())
    for warning in run.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.junit:
        try:
            write_junit(run, args.junit)
        except OSError as exc:
            fix = "pass --junit a file path in a writable directory"
            raise unwritable("the JUnit file", args.junit, exc, fix, args.junit.parent) from None
    return 0 if run.ok else 1
