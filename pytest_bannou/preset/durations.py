"""Durations as presets write them: ``500ms``, ``2s``, ``1m``, ``1m30s``, ``1h`` or plain seconds."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> float:
    """Seconds as a float; ``ValueError`` with the accepted forms otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 500ms, 2s, 1m or seconds, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for m in _PART.finditer(text):
                if text[pos : m.start()].strip():
                    break
                seconds += float(m.group(1)) * _UNITS[m.group(2)]
                pos = m.end()
            if pos == 0 or text[pos:].strip():
                raise ValueError(
                    f"expected a duration like 500ms, 2s, 1m, 1m30s or plain seconds, got {value!r}"
                ) from None
    else:
        raise ValueError(f"expected a duration like 500ms, 2s, 1m or seconds, got {value!r}")
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        raise ValueError(f"a duration must be a finite number >= 0, got {value!r}")
    return seconds
