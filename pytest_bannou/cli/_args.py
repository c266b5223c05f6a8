"""Arguments several commands share: preset directories and KEY=VALUE overrides."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import BannouError
from ..preset import PresetLibrary, dirs_from_env

PRESETS_DIR_HELP = "preset directory searched before BANNOU_PRESETS_DIR and the built-in library (repeatable)"


def add_presets_dir(parser: argparse.ArgumentParser, flag: str = "--dir") -> None:
    parser.add_argument(flag, action="append", default=[], metavar="DIR", help=PRESETS_DIR_HELP)


def preset_library(given: Iterable[str], *extra: Path) -> PresetLibrary:
    """Search path: ``extra``, the given directories, ``BANNOU_PRESETS_DIR``, the built-ins."""
    dirs = [*extra, *(Path(d) for d in given), *dirs_from_env(os.environ.get("BANNOU_PRESETS_DIR"))]
    return PresetLibrary(dirs)


def pairs(values: Iterable[str], what: str) -> dict[str, str]:
    """``["A=1", "B=2"]`` -> ``{"A": "1", "B": "2"}``; ``what`` names the option in errors."""
    out: dict[str, str] = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key:
            raise BannouError(f"{what} {v!r} must look like KEY=VALUE")
        out[key] = value
    return out


def replica_counts(values: Iterable[str]) -> dict[str, int]:
    """``--replicas NODE=N`` values -> ``{node: n}``."""
    counts = {}
    for node, count in pairs(values, "--replicas").items():
        if not count.isdigit():
            raise BannouError(f"--replicas {node}={count}: the count must be a whole number >= 0")
        counts[node] = int(count)
    return counts
