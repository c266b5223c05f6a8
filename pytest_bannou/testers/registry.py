"""Parsers by format name (the ``format:`` of a preset's tester entry)."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import BannouError
from .base import TesterParser


def _http() -> TesterParser:
    from .http_tester import HttpTesterParser

    return HttpTesterParser()


def _edge() -> TesterParser:
    from .edge_tester import EdgeTesterParser

    return EdgeTesterParser()


def _junit() -> TesterParser:
    from .junit import JUnitParser

    return JUnitParser()


def _exit_code() -> TesterParser:
    from .exit_code import ExitCodeParser

    return ExitCodeParser()


_PARSERS: dict[str, Callable[[], TesterParser]] = {
    "http-tester": _http,
    "edge-tester": _edge,
    "junit": _junit,
    "exit-code": _exit_code,
}


def known_formats() -> list[str]:
    return sorted(_PARSERS)


def get_parser(format: str) -> TesterParser:
    """The parser for ``format``; an unknown name is a user mistake that lists the known ones."""
    try:
        factory = _PARSERS[format]
    except KeyError:
        raise BannouError(
            f"unknown tester format {format!r}; known formats: {', '.join(known_formats())}"
            " (set `format:` of the tester in the preset to one of them)"
        ) from None
    return factory()
