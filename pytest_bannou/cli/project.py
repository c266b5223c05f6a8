"""The project ``bannou-env`` runs in: its rootdir and its pytest configuration, found as pytest
finds them, so the CLI sees the presets and backend the project's tests see.

pytest looks from the current directory upwards; in each directory the first of ``pytest.toml``,
``.pytest.toml``, ``pytest.ini``, ``.pytest.ini`` (these always count), ``pyproject.toml`` (with
``[tool.pytest]`` or ``[tool.pytest.ini_options]``), ``tox.ini`` (with ``[pytest]``) and
``setup.cfg`` (with ``[tool:pytest]``) is the configuration file, and its directory the rootdir.
Without one, the first ``pyproject.toml`` seen, then a ``setup.py``, marks the rootdir, else the
current directory. pytest itself is not imported here (only ``plugin/`` may): this reads the
same files with ``tomllib`` and ``configparser``.
"""

from __future__ import annotations

import configparser
import os
import shlex
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..environment.runs import current_directory
from ..errors import BannouError

Values = Mapping[str, Any]


class ConfigError(BannouError):
    """A pytest configuration file that cannot be read (pytest would refuse it too)."""


@dataclass(frozen=True)
class Project:
    """Where the project is and the ``bannou_*`` settings of its pytest configuration."""

    rootdir: Path
    inifile: Path | None = None
    values: Values = field(default_factory=dict)

    def string(self, key: str) -> str | None:
        """An ini value as text (None when unset or empty)."""
        value = self.values.get(key)
        if isinstance(value, list):
            value = " ".join(str(v) for v in value)
        text = "" if value is None else str(value).strip()
        return text or None

    def words(self, key: str) -> list[str]:
        """An ``args`` ini value as pytest reads it: a TOML list, or shell-like words."""
        value = self.values.get(key)
        if value is None:
            return []
        return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]

    def paths(self, key: str) -> list[Path]:
        """A ``paths`` ini value: words (a TOML list or shell-like words), relative ones resolved
        against the configuration file's directory, as pytest does for the plugin."""
        value = self.values.get(key)
        if value is None or self.inifile is None:
            return []
        words = self.words(key)
        base = self.inifile.parent
        return [base / Path(w).expanduser() for w in words if w]

    def where(self, key: str) -> str:
        """How to name a setting's origin in messages."""
        return f"ini key {key} in {self.inifile}" if self.inifile else f"ini key {key}"

    def contains(self, directory: Path) -> bool:
        """Whether ``directory`` (a run's recorded project) is this project or inside it."""
        try:
            directory, root = directory.resolve(), self.rootdir.resolve()
        except (OSError, RuntimeError, ValueError):
            return False
        return directory == root or root in directory.parents


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read pytest configuration {path}: {exc}; fix the file") from None


def _read_ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys as written
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise ConfigError(f"cannot read pytest configuration {path}: {exc}; fix the file") from None
    return parser


def _section(path: Path, name: str) -> Values | None:
    parser = _read_ini(path)
    return dict(parser[name]) if parser.has_section(name) else None


def _pytest_toml(path: Path) -> Values | None:
    table = _read_toml(path).get("pytest")
    return dict(table) if isinstance(table, dict) else {}


def _pytest_ini(path: Path) -> Values | None:
    return _section(path, "pytest") or {}


def _pyproject(path: Path) -> Values | None:
    tool = _read_toml(path).get("tool")
    table = tool.get("pytest") if isinstance(tool, dict) else None
    if not isinstance(table, dict):
        return None
    native = {k: v for k, v in table.items() if k != "ini_options"}
    if native:
        return native
    ini = table.get("ini_options")
    if not isinstance(ini, dict):
        return None
    return {k: v if isinstance(v, list) else str(v) for k, v in ini.items()}


# the files pytest reads, in its order (``_pytest.config.findpaths``)
LOADERS: dict[str, Callable[[Path], Values | None]] = {
    "pytest.toml": _pytest_toml,
    ".pytest.toml": _pytest_toml,
    "pytest.ini": _pytest_ini,
    ".pytest.ini": _pytest_ini,
    "pyproject.toml": _pyproject,
    "tox.ini": lambda p: _section(p, "pytest"),
    "setup.cfg": lambda p: _section(p, "tool:pytest"),
}


def find_project(start: Path | None = None) -> Project:
    """The project around ``start`` (default: the current directory), as pytest would see it
    when run there without arguments."""
    here = Path(start) if start is not None else Path(current_directory() or os.sep)
    here = here.absolute()
    first_pyproject: Path | None = None
    for base in (here, *here.parents):
        for name, loader in LOADERS.items():
            path = base / name
            if not path.is_file():
                continue
            if name == "pyproject.toml" and first_pyproject is None:
                first_pyproject = path
            values = loader(path)
            if values is not None:
                return Project(base, path, values)
    if first_pyproject is not None:
        return Project(first_pyproject.parent, first_pyproject)
    for base in (here, *here.parents):
        if (base / "setup.py").is_file():
            return Project(base)
    return Project(here)
