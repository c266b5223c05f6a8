"""Turning raw tester output into clean lines: the one place that knows about transport noise.

Tester output reaches us through terminals, ``docker logs --timestamps``, ``docker compose logs``
(``svc-1  | `` prefixes) and CI log viewers: ANSI colour codes, CRLF line ends and timestamps
are stripped here so the parsers can match markers exactly. A leading RFC 3339 timestamp is kept
as a number (seconds) because it is the only source of per-test durations.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import NamedTuple

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b\n]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_COMPOSE_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*[ \t]+\|(?: |$)")
_ANY_COMPOSE_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*[ \t]+\| ", re.MULTILINE)
_SAMPLE = 65536
_ANY_TIMESTAMP = re.compile(
    r"^(?:[A-Za-z0-9][A-Za-z0-9_.-]*[ \t]+\| )?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}", re.MULTILINE
)
_TIMESTAMP = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,](\d+))?(Z|[+-]\d{2}:?\d{2})?(?:\s|$)"
)


class Line(NamedTuple):
    text: str  # the line without ANSI codes, CR, compose prefix or timestamp
    ts: float | None  # seconds since the epoch, when the line carried a timestamp


def clean(raw: str) -> Line:
    """One raw line -> its text and timestamp (cheap checks first: this runs per line)."""
    if "\x1b" in raw:
        raw = _ANSI.sub("", raw)
    if raw.endswith("\r"):
        raw = raw.rstrip("\r")
    if "|" in raw:
        m = _COMPOSE_PREFIX.match(raw)
        if m:
            raw = raw[m.end() :]
    ts = None
    if raw[:1].isdigit():
        m = _TIMESTAMP.match(raw)
        if m:
            ts = _epoch(m)
            if ts is not None:
                raw = raw[m.end() :]
    return Line(raw, ts)


def iter_lines(text: str) -> Iterator[Line]:
    """Clean lines of ``text``; only ``\\n`` separates lines (a stray CR or U+2028 inside a
    message does not split it)."""
    if not text:
        return
    start = 0
    find = text.find
    while True:  # lazily: a 50 MB log is not copied into a list of lines
        end = find("\n", start)
        if end < 0:
            yield clean(text[start:])
            return
        yield clean(text[start:end])
        start = end + 1


def split_lines(text: str) -> tuple[list[str], list[float | None] | None]:
    """All clean lines of ``text`` and, when the output carries timestamps, one per line.

    The fast path for the parsers: colour codes and CRLF are removed in one pass over the whole
    text, and the per-line work (compose prefixes, timestamps) only runs when the output has
    them at all. Equivalent to ``iter_lines``.
    """
    if not text:
        return [], None
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if lines[-1].endswith("\r"):
        lines[-1] = lines[-1].rstrip("\r")
    # prefixes and timestamps come from the transport and mark every line: sampling both ends
    # of the output finds them without scanning a 50 MB log
    sample = text if len(text) <= 2 * _SAMPLE else text[:_SAMPLE] + "\n" + text[-_SAMPLE:]
    if "|" in sample and _ANY_COMPOSE_PREFIX.search(sample):
        match = _COMPOSE_PREFIX.match
        for i, raw in enumerate(lines):
            if "|" in raw:
                m = match(raw)
                if m:
                    lines[i] = raw[m.end() :]
    if not _ANY_TIMESTAMP.search(sample):
        return lines, None
    stamps: list[float | None] = [None] * len(lines)
    match = _TIMESTAMP.match
    for i, raw in enumerate(lines):
        if raw[:1].isdigit():
            m = match(raw)
            if m:
                ts = _epoch(m)
                if ts is not None:
                    stamps[i] = ts
                    lines[i] = raw[m.end() :]
    return lines, stamps


def _epoch(m: re.Match[str]) -> float | None:
    date, time, frac, zone = m.groups()
    stamp = f"{date}T{time}"
    if frac:
        stamp += "." + frac[:6].ljust(6, "0")
    if zone:
        stamp += "+00:00" if zone == "Z" else zone
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def tail(lines: list[str], max_lines: int = 60, max_chars: int = 8000) -> str:
    """The last lines of some output, bounded both ways (failure reports stay readable)."""
    text = "\n".join(lines[-max_lines:])
    if len(text) > max_chars:
        text = text[-max_chars:]
    return text
