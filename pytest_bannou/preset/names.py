"""Preset names: what a name may be (a plain file name), checked wherever a name arrives
(the CLI, markers, ``extends``) before it becomes a path."""

from __future__ import annotations

import os
import re

from ..errors import Location, PresetError, Problem

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MAX_NAME = 250


def check_name(name: str) -> str:
    """A preset name is a plain file name: no directories, no absolute paths, no ``..``, no
    NUL, short enough to be a file name."""
    if not isinstance(name, str) or not name:
        raise PresetError(Problem(Location("<preset name>"), "a preset name must be a non-empty string"))
    if len(name) > MAX_NAME:
        raise PresetError(
            Problem(
                Location("<preset name>"),
                f"invalid preset name {name[:40]!r}...: it is {len(name)} characters long; a preset name "
                f"is a file name of at most {MAX_NAME} characters (without .yaml)",
            )
        )
    if "/" in name or "\\" in name or os.sep in name or name.startswith(".") or os.path.isabs(name):
        raise PresetError(
            Problem(
                Location("<preset name>"),
                f"invalid preset name {name!r}: a preset name is a plain name "
                "like 'monolith', not a path; put the file in a directory on the search path "
                "(--bannou-presets-dir or BANNOU_PRESETS_DIR) instead",
            )
        )
    if not NAME_PATTERN.fullmatch(name):
        raise PresetError(
            Problem(
                Location("<preset name>"),
                f"invalid preset name {name!r}: use letters, digits, '-', '_' "
                "and '.', starting with a letter or digit",
            )
        )
    return name
