"""``bannou-env``: the command line. Thin: parses arguments and calls the layers.

Each command group lives in its own module exposing ``register(subparsers)``; a module's
handlers return an exit code. ``BannouError`` is printed as one message, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Sequence

from ..errors import BannouError

# command-group modules, each with register(subparsers) -> None
COMMAND_MODULES = (
    "presets_cmd",
    "environment_cmd",
    "render_cmd",
    "testers_cmd",
    "report_cmd",
    "live_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bannou-env",
        description="Deploy, inspect and clean bannou test environments (presets).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue  # command group not part of this build
            raise
        module.register(sub)
    return parser


def _escaping_output() -> None:
    """Arguments, file names and files may hold lone surrogates (undecodable bytes, ``\\ud800`` in
    JSON): print them escaped, as Python's own stderr does, instead of failing mid-message with
    ``UnicodeEncodeError`` (stdout is strict in a UTF-8 locale)."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) in ("strict", "surrogateescape"):
            with contextlib.suppress(AttributeError, ValueError, OSError):
                stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]


def main(argv: Sequence[str] | None = None) -> int:
    _escaping_output()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except BannouError as exc:
        print(f"bannou-env: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
