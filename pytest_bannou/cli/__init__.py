"""``bannou-env``: the command line. Thin: parses arguments and calls the layers.

Each command group lives in its own module exposing ``register(subparsers)``; a module's
handlers return an exit code. ``BannouError`` is printed as one message, never a traceback.
Exit statuses: 0 done, 1 the thing asked about is wrong (a preset, a run), 2 the command line is
wrong (argparse's errors and ``UsageError``), 130 interrupted, 141 (128 + SIGPIPE, as other
tools) when whoever read the output stopped reading (``bannou-env ... | head``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
from collections.abc import Sequence
from importlib import metadata

from ..errors import BannouError, UnknownPresetError

EXIT_PIPE_CLOSED = 128 + getattr(signal, "SIGPIPE", 13)

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
        description="Deploy, inspect and clean bannou test environments (presets). Settings the "
        "pytest plugin has (presets directories, backend, ...) come from the flags, the BANNOU_* "
        "variables, or the pytest configuration of the project around the current directory.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
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


def version() -> str:
    """The installed distribution's version (the package's own when run from a source tree)."""
    try:
        return metadata.version("pytest-bannou")
    except metadata.PackageNotFoundError:
        from .. import __version__

        return __version__


def main(argv: Sequence[str] | None = None) -> int:
    _escaping_output()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        try:
            code = int(args.handler(args) or 0)
        except BannouError as exc:
            if isinstance(exc, UnknownPresetError):  # bannou-env's flag, not pytest's
                exc = exc.worded_for("--presets-dir")
            print(f"bannou-env: {exc}", file=sys.stderr)
            code = getattr(exc, "exit_status", 1)  # 2 for ``_args.UsageError``
        sys.stdout.flush()  # inside the try: a reader gone shows here, not at interpreter exit
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_PIPE_CLOSED


def _silence_stdout() -> None:
    """The reader of our output is gone: point stdout at devnull so that the flush at exit does
    not raise again (the way Python's documentation on SIGPIPE recommends)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (an in-process test)
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
