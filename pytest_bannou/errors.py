"""The plugin's own error types.

Every user mistake (bad preset, unknown preset, unavailable backend, a node that never gets
healthy) is raised as a ``BannouError``; the pytest plugin and the CLI print its message as is,
without a traceback. Anything else escaping is a bug in pytest-bannou.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


class BannouError(Exception):
    """Base class: the message says what, where and how to fix it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Location:
    """A place in a preset file, 1-based like editors and compilers print it."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column or 1}"
        return self.file


@dataclass(frozen=True)
class Problem:
    """One validation finding: ``FILE:LINE:COL: message``."""

    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class PresetError(BannouError):
    """One or more problems in preset files, all reported together."""

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(Location("<preset>"), problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the candidate nearest to a name that is not one (``""`` when
    none is near): the one suggestion of every "unknown ..." message."""
    close = difflib.get_close_matches(name, list(dict.fromkeys(candidates)), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class UnknownPresetError(PresetError):
    """A preset name that is on no search path directory. ``flag`` is the option that adds a
    directory where the message is read (pytest's; ``bannou-env`` rewords it with ``worded_for``)."""

    def __init__(
        self, name: str, known: list[str], searched: list[str], flag: str = "--bannou-presets-dir"
    ) -> None:
        self.name = name
        self.known = known
        self.searched = searched
        msg = (
            f"unknown preset {name!r}; known presets: {', '.join(sorted(known)) or '(none)'}"
            f" (searched: {', '.join(searched) or '(nothing)'}; add a directory with"
            f" {flag} or BANNOU_PRESETS_DIR){did_you_mean(name, known)}"
        )
        Exception.__init__(self, msg)
        self.message = msg
        self.problems = [Problem(Location("<search path>"), msg)]

    def worded_for(self, flag: str) -> UnknownPresetError:
        """The same error naming ``flag`` as the way to add a preset directory."""
        return UnknownPresetError(self.name, self.known, self.searched, flag)


class BackendUnavailable(BannouError):
    """The chosen backend cannot run here; the message says why and what to install."""


class DeployError(BannouError):
    """A deployment, transition or teardown failed in the engine."""


class NodeNotReady(DeployError):
    """A node exited or did not become healthy before its deadline."""

    def __init__(self, preset: str, node: str, reason: str, logs: str = "", backend: str = "") -> None:
        self.preset = preset
        self.node = node
        self.reason = reason
        self.logs = logs
        where = f" on backend {backend}" if backend else ""
        msg = f"preset {preset!r}: node {node!r}{where} is not ready: {reason}"
        if logs.strip():
            tail = "\n".join("    " + line for line in logs.rstrip().splitlines()[-20:])
            msg += f"\n  last log lines of {node}:\n{tail}"
        super().__init__(msg)
