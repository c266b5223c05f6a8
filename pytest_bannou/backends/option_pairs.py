"""Backend options as users write them (``KEY=VALUE`` words, comma-separated in the environment
variable ``BANNOU_BACKEND_OPTION``), read into ``BackendOptions.extra``: one parser for pytest's
``--bannou-backend-option`` and ``bannou-env --backend-option``, so both mean the same."""

from __future__ import annotations

import math
from collections.abc import Iterable

from ..errors import BannouError
from ..preset.durations import parse_duration

ENV_VAR = "BANNOU_BACKEND_OPTION"
INI_KEY = "bannou_backend_option"

# backend options that are durations: key -> (backend, whether 0 is allowed). Checked when the
# options are read, so that a bad value is a usage error naming the option instead of a failure
# (or a traceback) inside the backend.
DURATION_BACKEND_OPTIONS: dict[str, tuple[str, bool]] = {
    "grace_period": ("local", True),
    "stop_grace": ("compose", True),
    "kubernetes_teardown_timeout": ("kubernetes", False),
    "kubernetes_termination_grace": ("kubernetes", True),
}


class BackendOptionError(BannouError):
    """A backend option that is not ``KEY=VALUE`` or whose duration cannot be used."""


def split_words(items: Iterable[object]) -> list[str]:
    """The option's words: each item split on commas (``a=1,b=2``), blanks dropped."""
    return [p.strip() for item in items for p in str(item).split(",") if p.strip()]


def parse_backend_options(items: Iterable[object], where: str, flag: str) -> dict[str, str]:
    """``["kubeconfig=/k", "grace_period=1m"]`` -> ``{"kubeconfig": "/k", "grace_period": "60.0"}``.
    ``where`` names the source in errors (``--bannou-backend-option``, ``environment variable
    BANNOU_BACKEND_OPTION``, ``ini key bannou_backend_option``); ``flag`` is the example's flag."""
    out: dict[str, str] = {}
    for pair in split_words(items):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BackendOptionError(
                f"{where} {pair!r} is not KEY=VALUE; e.g. {flag} kubernetes_service_type=NodePort"
            )
        key, value = key.strip(), value.strip()
        if key in DURATION_BACKEND_OPTIONS:
            value = _seconds(key, value, where)
        out[key] = value
    return out


def _seconds(key: str, value: str, where: str) -> str:
    """A duration option as the backend reads it (plain seconds), or ``BackendOptionError``."""
    backend, zero_ok = DURATION_BACKEND_OPTIONS[key]
    try:
        seconds = parse_duration(value)
    except ValueError:
        seconds = math.nan
    if math.isfinite(seconds) and (seconds > 0 or (zero_ok and seconds == 0)):
        try:
            float(value)
        except ValueError:
            return str(seconds)  # 1m -> 60.0: the backends read plain seconds
        return value
    raise BackendOptionError(
        f"{where} {key}={value!r}: expected seconds {'>=' if zero_ok else '>'} 0"
        f" (a finite number like 5, 2.5, 500ms or 1m) for the {backend} backend's {key}"
    )
