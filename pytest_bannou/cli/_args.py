"""Arguments several commands share: preset directories, KEY=VALUE overrides, and the checked
argument types (run ids, durations, line counts) that turn bad values into usage errors (exit 2).

Settings the pytest plugin also has are taken as it takes them: the flag, else the environment
variable, else the project's pytest configuration (``project.find_project``), else the default."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..backends.option_pairs import ENV_VAR, INI_KEY, BackendOptionError, parse_backend_options
from ..environment.kept import recorded_options
from ..environment.runs import RunIdError, check_run_id
from ..errors import BannouError, PresetError
from ..preset import PresetLibrary, dirs_from_env
from ..preset.durations import parse_duration
from .project import Project, find_project

PRESETS_DIR_HELP = (
    "preset directory searched before BANNOU_PRESETS_DIR (or the project's bannou_presets_dir ini "
    "setting) and the built-in library (repeatable)"
)
PRESETS_DIR_ALIASES = ("--dir",)  # older spellings, still accepted, no longer shown


class UsageError(BannouError):
    """The command line itself is wrong (exit status 2, as argparse's own errors)."""

    exit_status = 2


def add_presets_dir(parser: argparse.ArgumentParser) -> None:
    """``--presets-dir DIR``: the one name for preset directories, as in ``--bannou-presets-dir``."""
    parser.add_argument(
        "--presets-dir", dest="presets_dir", action="append", default=[], metavar="DIR", help=PRESETS_DIR_HELP
    )
    for alias in PRESETS_DIR_ALIASES:
        parser.add_argument(alias, dest="presets_dir", action="append", help=argparse.SUPPRESS)


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """``--backend-option KEY=VALUE``: pytest's ``--bannou-backend-option``, beside ``--backend``."""
    parser.add_argument(
        "--backend-option",
        dest="backend_options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"a backend-specific setting (repeatable, or comma-separated), e.g. kubeconfig=PATH, "
        f"kubernetes_service_type=NodePort (default: ${ENV_VAR}, the project's {INI_KEY} ini setting)",
    )


def backend_options(given: Iterable[str], project: Project | None = None) -> dict[str, str]:
    """The backend options as pytest takes them: the flags, else ``BANNOU_BACKEND_OPTION``
    (comma-separated), else the project's ``bannou_backend_option``; checked by pytest's parser."""
    given = list(given)
    try:
        if given:
            try:
                return parse_backend_options(given, "--backend-option", "--backend-option")
            except BackendOptionError as exc:
                raise UsageError(exc.message) from None
        from_env = os.environ.get(ENV_VAR, "").strip()
        if from_env:
            return parse_backend_options([from_env], f"environment variable {ENV_VAR}", "--backend-option")
        project = project or find_project()
        return parse_backend_options(project.words(INI_KEY), project.where(INI_KEY), "--backend-option")
    except BackendOptionError as exc:
        raise BannouError(exc.message) from None


def run_backend_options(info: Mapping[str, Any], flags: Iterable[str]) -> dict[str, str]:
    """The backend options of a command acting on a recorded run (``logs``, ``clean``): the
    ones the run was deployed with (where it is: a kubeconfig, a context), under the flags given
    now; ``BANNOU_BACKEND_OPTION`` and the ini only fill in keys the run did not record (they are
    this shell's defaults, not the run's), and a broken project configuration does not stop it."""
    flags = list(flags)
    if flags:
        return recorded_options(info, backend_options(flags))
    try:
        defaults = backend_options([])
    except BannouError:  # ConfigError included: cleaning up must not depend on the ini
        defaults = {}
    return {**defaults, **recorded_options(info)}


def preset_library(given: Iterable[str], *extra: Path, project: Project | None = None) -> PresetLibrary:
    """Search path: ``extra``, the given directories, ``BANNOU_PRESETS_DIR`` or else the
    project's ``bannou_presets_dir``, the built-ins."""
    first = [*extra, *(Path(d) for d in given)]
    from_env = dirs_from_env(os.environ.get("BANNOU_PRESETS_DIR"))
    if from_env:
        return PresetLibrary([*first, *from_env])
    project = project or find_project()
    configured = project.paths("bannou_presets_dir")
    try:
        PresetLibrary(configured, include_builtin=False)
    except PresetError as exc:
        raise BannouError(f"{project.where('bannou_presets_dir')}: {exc}") from None
    return PresetLibrary([*first, *configured])


def setting(given: str | None, env: str, key: str, default: str, project: Project | None = None) -> str:
    """A setting the plugin also has: the flag, the environment variable, the ini key, the default."""
    if given is not None:
        return given
    value = os.environ.get(env, "").strip()
    if value:
        return value
    return (project or find_project()).string(key) or default


def pairs(values: Iterable[str], what: str) -> dict[str, str]:
    """``["A=1", "B=2"]`` -> ``{"A": "1", "B": "2"}``; ``what`` names the option in errors."""
    out: dict[str, str] = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} {v!r} must look like KEY=VALUE")
        out[key] = value
    return out


def replica_counts(values: Iterable[str]) -> dict[str, int]:
    """``--replicas NODE=N`` values -> ``{node: n}``."""
    counts = {}
    for node, count in pairs(values, "--replicas").items():
        n = whole_number(count)
        if n is None:
            raise UsageError(f"--replicas {node}={count}: the count must be a whole number >= 0")
        counts[node] = n
    return counts


def run_id_arg(text: str) -> str:
    """argparse type: a run id as ``new_run_id`` makes them, never a path."""
    try:
        return check_run_id(text)
    except RunIdError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def seconds_arg(text: str) -> float:
    """argparse type: a finite duration > 0 (``90``, ``90s``, ``1m30s``), as in preset files."""
    try:
        value = parse_duration(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds more than 0 (and finite); e.g. 60, 90s or 2m"
        )
    return value


def lines_arg(text: str) -> int:
    """argparse type: a whole number of lines >= 0."""
    value = whole_number(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of lines >= 0; e.g. --tail 50")
    return value


def whole_number(text: str) -> int | None:
    """``text`` as an int >= 0 (ASCII digits, at most 9 of them), else None."""
    text = text.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 9):
        return None
    return int(text)
