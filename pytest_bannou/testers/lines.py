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
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,]([0-9]+))?(Z|[+-]\d{2}:?\d{2})?(?:\s|$)"
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


def split_lines(
    text: str, stamp_starts: frozenset[str] | None = None
) -> tuple[list[str], list[float | None] | None]:
    """All clean lines of ``text`` and, when the output carries timestamps, one per line.

    The fast path for the parsers: colour codes and CRLF are removed in one pass over the whole
    text, and the per-line work (compose prefixes, timestamps) only runs when the output has
    them at all. Equivalent to ``iter_lines``, except that with ``stamp_starts`` (the first
    characters of the lines a parser reads times from) only those lines and the last timestamped
    line get their time: converting every line's timestamp is most of the cost on a big log.
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
    prefixed = "|" in sample and _ANY_COMPOSE_PREFIX.search(sample) is not None
    if prefixed:
        match = _COMPOSE_PREFIX.match
        for i, raw in enumerate(lines):
            if "|" in raw:
                m = match(raw)
                if m:
                    lines[i] = raw[m.end() :]
    if not _ANY_TIMESTAMP.search(sample):
        return lines, None
    if not prefixed:
        stamps = _uniform_stamps(text, lines, stamp_starts)
        if stamps is not None:
            return lines, stamps
    stamps = [None] * len(lines)
    match = _TIMESTAMP.match
    epoch = _EpochCache()
    bases = epoch.bases
    last_raw = ""
    last_i = -1
    value = epoch.value
    for i, raw in enumerate(lines):
        m = match(raw)  # fails at the first character of an unstamped line
        if m is None:
            continue
        zone = m.group(4)  # the whole-second part is cached: one dict lookup a line
        base = bases.get(raw[:19] if zone is None else raw[:19] + zone, False)
        if base is False:
            base = epoch.base(raw, m)
        if base is None:
            continue  # not a real date: the line keeps it
        rest = raw[m.end() :]
        if stamp_starts is None or rest[:1] in stamp_starts:
            end = m.end(3)
            stamps[i] = value(base, raw[20 : min(end, 26)] if end > 0 else "")
        lines[i] = rest
        last_raw, last_i = raw, i
    if last_i >= 0 and stamps[last_i] is None:
        m = match(last_raw)
        end = m.end(3)  # type: ignore[union-attr]
        base = epoch.base(last_raw, m)  # type: ignore[arg-type]
        stamps[last_i] = value(base, last_raw[20 : min(end, 26)] if end > 0 else "")  # type: ignore[arg-type]
    return lines, stamps


class _EpochCache:
    """``_epoch`` for many timestamps of the same seconds: the whole-second part is converted
    once per distinct second and zone, the fraction is added with the same arithmetic as
    ``datetime.timestamp()`` (identical results without a datetime per line)."""

    __slots__ = ("bases",)

    def __init__(self) -> None:
        self.bases: dict[str, tuple[int | float, bool] | None] = {}

    def base(self, raw: str, m: re.Match[str]) -> tuple[int | float, bool] | None:
        """(whole seconds, aware) of a ``_TIMESTAMP`` match on ``raw``; None: not a real date."""
        zone = m.group(4)
        key = raw[:19] if zone is None else raw[:19] + zone  # date, separator, time: 19 chars
        try:
            return self.bases[key]
        except KeyError:
            found = self.bases[key] = _whole_second(m.group(1), m.group(2), zone)
            return found

    @staticmethod
    def value(base: tuple[int | float, bool], digits: str) -> float:
        """The time of a stamp with whole seconds ``base`` and fraction ``digits`` (<= 6 of them)."""
        seconds, aware = base
        if not digits:
            return float(seconds)
        micro = int(digits) * _SCALE[len(digits)]
        # aware: timedelta.total_seconds() divides integer microseconds; naive: mktime + us/1e6
        return (seconds * 1_000_000 + micro) / 1_000_000 if aware else seconds + micro / 1e6


_SCALE = (0, 100_000, 10_000, 1_000, 100, 10, 1)


def _uniform_stamps(
    text: str, lines: list[str], stamp_starts: frozenset[str] | None
) -> list[float | None] | None:
    """The fast path of ``split_lines`` for the usual log (``docker logs --timestamps``): every
    line (but a last empty one) starts with a timestamp of the first line's exact shape. One
    regex search over the whole text proves it, then the stamps are cut off at a fixed width
    without a regex per line. None (use the general path) when any line differs."""
    first = lines[0]
    m = _TIMESTAMP.match(first)
    if m is None or first[m.end() - 1 : m.end()] != " ":
        return None
    width = m.end()
    frac, zone = m.group(3), m.group(4)
    shape = (
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
        + re.escape(first[10])
        + r"[0-9]{2}:[0-9]{2}:[0-9]{2}"
        + (re.escape(first[19]) + f"[0-9]{{{len(frac)}}}" if frac else "")
        + (re.escape(zone) if zone else "")
        + " "
    )
    if not re.match(shape, first):
        return None
    stamped = len(lines) - 1 if lines[-1] == "" and len(lines) > 1 else len(lines)
    end = len(text) - 1 if stamped < len(lines) else len(text)
    if re.compile(r"\n(?!" + shape + ")").search(text, 0, end) is not None:
        return None  # a line without a stamp of that shape
    epoch = _EpochCache()
    bases: dict[str, tuple[int | float, bool]] = {}
    for key in {ln[:19] for ln in lines[:stamped]}:
        base = _whole_second(key[:10], key[11:19], zone)
        if base is None:
            return None  # a line with an impossible date keeps its stamp: the general path
        bases[key] = base
    digits = slice(20, 20 + min(len(frac), 6)) if frac else slice(0, 0)
    value = epoch.value
    stamps: list[float | None] = [None] * len(lines)
    if stamp_starts is None:
        wanted = range(stamped)
    else:
        wanted = [i for i, ln in enumerate(lines) if ln[width : width + 1] in stamp_starts]
        if stamped and (not wanted or wanted[-1] != stamped - 1):
            wanted.append(stamped - 1)  # the last stamped line always has its time
    for i in wanted:
        raw = lines[i]
        stamps[i] = value(bases[raw[:19]], raw[digits])
    for i in range(stamped):
        lines[i] = lines[i][width:]
    return stamps


def _whole_second(date: str, time: str, zone: str | None) -> tuple[int | float, bool] | None:
    stamp = f"{date}T{time}"
    if zone:
        stamp += "+00:00" if zone == "Z" else zone
    try:
        dt = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if dt.tzinfo is not None:
        return round(dt.timestamp()), True
    return dt.timestamp(), False


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
