"""The preset search path: the user's directories first (first wins), the built-in library last."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import Location, PresetError, Problem, UnknownPresetError
from ..topology.model import Topology
from .loader import Preset, load_tree, not_regular
from .names import NAME_PATTERN, check_name
from .resolve import resolve
from .yamlpos import PosDict

SUFFIXES = (".yaml", ".yml")


def builtin_presets_dir() -> Path:
    """``presets/`` of the source tree, or ``pytest_bannou/_builtin_presets`` in a wheel."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "_builtin_presets"
    if installed.is_dir():
        return installed
    return package.parent / "presets"


def dirs_from_env(value: str | None) -> list[Path]:
    """``BANNOU_PRESETS_DIR``: ``os.pathsep``-separated directories, empty parts ignored."""
    if not value:
        return []
    return [Path(part).expanduser() for part in value.split(os.pathsep) if part.strip()]


# a file name is at most 255 bytes on every filesystem we run on; the name gets ".yaml" appended


def _check_dir(d: Path) -> None:
    """A preset directory the user named must exist: a typo would otherwise be ignored."""
    try:
        is_dir = d.is_dir()
        exists = is_dir or d.exists()
    except OSError as exc:
        raise PresetError(Problem(Location(str(d)), f"cannot use preset directory: {exc}")) from None
    if is_dir:
        return
    what = "is not a directory" if exists else "does not exist"
    raise PresetError(
        Problem(
            Location(str(d)),
            f"preset directory {what}; create it or fix the path "
            "(--bannou-presets-dir, BANNOU_PRESETS_DIR, bannou_presets_dir or bannou-env --presets-dir)",
        )
    )


class PresetLibrary:
    """Finds, loads (with ``extends``) and resolves presets by name; loads are cached."""

    def __init__(
        self,
        dirs: Sequence[str | os.PathLike[str]] = (),
        environ: Mapping[str, str] | None = None,
        include_builtin: bool = True,
    ) -> None:
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        found = [Path(d).expanduser() for d in dirs]
        for d in found:
            _check_dir(d)
        if include_builtin:
            found.append(builtin_presets_dir())
        self._dirs = list(dict.fromkeys(p.resolve() for p in found))
        self._cache: dict[str, tuple[PosDict, Preset]] = {}

    @property
    def directories(self) -> list[Path]:
        return list(self._dirs)

    def _index(self) -> dict[str, Path]:
        index: dict[str, Path] = {}
        for d in self._dirs:
            if not d.is_dir():
                continue
            for f in sorted(d.iterdir()):
                if f.suffix in SUFFIXES and f.is_file() and NAME_PATTERN.fullmatch(f.stem):
                    index.setdefault(f.stem, f)
        return index

    def names(self) -> list[str]:
        return sorted(self._index())

    def path(self, name: str) -> Path:
        check_name(name)
        for d in self._dirs:
            for suffix in SUFFIXES:
                candidate = d / f"{name}{suffix}"
                try:
                    mode = candidate.stat().st_mode
                except OSError:
                    continue
                error = not_regular(candidate, mode)
                if error:  # a FIFO or directory named like a preset: say so rather than "unknown"
                    raise error
                return candidate
        raise UnknownPresetError(name, self.names(), [str(d) for d in self._dirs])

    def tree(self, name: str, stack: tuple[str, ...] = ()) -> PosDict:
        """The loaded tree of preset ``name`` (``stack``: the presets extending it), cached."""
        if name not in self._cache:
            self._cache[name] = load_tree(
                self.path(name), self.environ, self, (*stack, name), expect_name=name
            )
        return self._cache[name][0]

    def load(self, name: str) -> Preset:
        self.tree(name)
        return self._cache[name][1]

    def resolve(
        self,
        name: str,
        environment: Mapping[str, str] | None = None,
        replicas: Mapping[str, int] | None = None,
    ) -> Topology:
        return resolve(self.load(name), environment=environment, replicas=replicas)

    def __repr__(self) -> str:
        return f"PresetLibrary({[str(d) for d in self._dirs]!r})"


def load_file(
    path: str | os.PathLike[str],
    environ: Mapping[str, str] | None = None,
    library: PresetLibrary | None = None,
) -> Preset:
    """Load one preset file (extends resolved through ``library``, else the file's directory
    and the built-in library). Raises ``PresetError`` with every problem of the file."""
    p = Path(path)
    env = os.environ if environ is None else environ
    if library is not None and environ is None:
        env = library.environ
    if library is None:  # extends: the file's directory, then the built-in library
        library = PresetLibrary([p.parent], environ=env)
    return load_tree(p, env, library, (p.stem,))[1]
