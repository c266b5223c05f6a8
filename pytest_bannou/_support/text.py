"""Text every writer can hold: valid UTF-8, well-formed XML, escaped controls for terminals.

Python strings hold what no file can: lone surrogates (``"\\udcff"``, what ``surrogateescape``
makes of undecodable bytes) do not encode as UTF-8, and XML 1.0 cannot carry C0 controls,
surrogates or U+FFFE/U+FFFF even as character references. One such character in a failure
message once cost a whole run its report, so every writer (results.json, junit.xml,
report.html, the testers' JUnit writer, the CLI's output) passes its text through here.
On a terminal, controls move the cursor, clear the screen or set the window title: tester output
is shown with them escaped (newlines and tabs kept).
"""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")
# colour codes, OSC (window title ...) and other escape sequences (as testers/lines.py strips them)
ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b\n]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
# what XML 1.0 cannot carry at all (lone surrogates are gone by the time this applies)
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# C0 controls but tab and newline, DEL and C1 controls (U+009B is a CSI on some terminals)
_TERMINAL_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def utf8_text(text: str) -> str:
    """``text`` that encodes as UTF-8: a surrogate pair is joined, a lone surrogate is U+FFFD."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def xml_text(text: str) -> str:
    """``text`` storable in XML 1.0: valid UTF-8, escape sequences dropped, characters XML
    cannot carry written as ``\\xNN`` / ``\\uFFFE``."""
    text = utf8_text(text)
    if "\x1b" in text:
        text = ANSI.sub("", text)
    return _XML_ILLEGAL.sub(_escape, text)


def terminal_text(text: str) -> str:
    """``text`` safe to print: valid UTF-8, escape sequences dropped, every other control but
    newline and tab written as ``\\xNN`` (a CR before a newline is dropped)."""
    text = utf8_text(text)
    if "\x1b" in text:
        text = ANSI.sub("", text)
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
    return _TERMINAL_CONTROL.sub(_escape, text)


def utf8_strings(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, strings, numbers) with every string ``utf8_text``."""
    if isinstance(value, str):
        return utf8_text(value)
    if isinstance(value, dict):
        return {utf8_strings(k): utf8_strings(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [utf8_strings(v) for v in value]
    return value


def short_error(exc: BaseException) -> str:
    """The last line of ``exc``'s text (at most 300 characters), or its type's name: what went
    wrong, short enough for a one-line message (an engine's errors carry whole HTTP bodies)."""
    text = str(exc).strip().splitlines()
    return text[-1][:300] if text else type(exc).__name__
