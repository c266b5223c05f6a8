"""Recognising a tester that shows its interactive menu instead of running (daemon mode not
honoured): such a tester waits on stdin forever, which is a configuration error, not a test
failure, and the report must say so."""

from __future__ import annotations

import re

from .lines import iter_lines

_PROMPT = re.compile(
    r"(?i)\b(enter|select|choose|type|pick)\b[^\n]{0,60}\b(choice|option|number|selection|test to run)\b"
    r"|press any key|\bmenu\b"
)
_MENU_ITEM = re.compile(r"^\s*\[?\d{1,2}[\].):]\s+\S")

DAEMON_HINT = (
    "the tester showed an interactive menu and waited on stdin: daemon mode was not honoured "
    "(configuration error). DAEMON_MODE=true is set for every tester; make the tester read it, "
    "or add --daemon to its command in the preset"
)


def looks_interactive(text: str, last_lines: int = 80) -> bool:
    """True when the end of ``text`` looks like a menu plus a prompt."""
    lines = [ln.text for ln in iter_lines(text[-20000:])][-last_lines:]
    prompt = any(_PROMPT.search(line) for line in lines)
    items = sum(1 for line in lines if _MENU_ITEM.match(line))
    return prompt and items >= 2
