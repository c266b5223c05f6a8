"""Reading one preset file: parse with positions, interpolate, normalize keys, merge the
``extends`` parent, validate, hash. All problems of a file are raised together."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from pydantic import PrivateAttr

from ..errors import Location, PresetError, Problem, UnknownPresetError
from .hashing import content_hash
from .interpolate import interpolate_tree
from .names import check_name
from .normalize import normalize
from .schema import PresetSpec
from .validate import schema_problems, semantic_problems
from .yamlpos import MAX_TEXT, PosDict, PosList, parse, plain


class ParentTrees(Protocol):
    """Where ``extends`` targets are found by name (``library.PresetLibrary`` is one): the
    loaded tree of preset ``name``, ``stack`` being the chain of presets extending it."""

    def tree(self, name: str, stack: tuple[str, ...] = ()) -> PosDict: ...


class Preset(PresetSpec):
    """A validated preset with ``extends`` applied; knows its file, content hash and raw data."""

    _source: Path | None = PrivateAttr(default=None)
    _hash: str = PrivateAttr(default="")
    _raw: dict = PrivateAttr(default_factory=dict)

    @property
    def source(self) -> Path | None:
        return self._source

    @property
    def hash(self) -> str:
        return self._hash

    @property
    def raw(self) -> dict:
        """The merged preset as plain data, keys normalized to field names (snake_case)."""
        return self._raw


# lists merged item by item (keyed by this field) when a preset extends another
MERGE_BY = {("topology", "nodes"): "name", ("testers",): "name", ("processing_pools",): "pool_type"}


def merge(parent: Any, child: Any, path: tuple[str, ...] = ()) -> Any:
    """``child`` over ``parent``: mappings merge key by key, node/tester/pool lists by name,
    any other value is replaced. Inputs are not modified."""
    if isinstance(parent, PosDict) and isinstance(child, PosDict):
        out = PosDict(child.loc)
        for key, value in parent.items():
            out[key] = value
            out.key_loc[key] = parent.key_loc[key]
            out.val_loc[key] = parent.val_loc[key]
        for key, value in child.items():
            out[key] = merge(out[key], value, (*path, key)) if key in out else value
            out.key_loc[key] = child.key_loc[key]
            out.val_loc[key] = child.val_loc[key]
        return out
    by = MERGE_BY.get(path)
    if by and isinstance(parent, PosList) and isinstance(child, PosList):
        out_list = PosList(child.loc)
        index: dict[Any, int] = {}
        for item, loc in zip(parent, parent.val_loc, strict=False):
            if isinstance(item, dict) and isinstance(item.get(by), str):
                index[item[by]] = len(out_list)
            out_list.append(item)
            out_list.val_loc.append(loc)
        for item, loc in zip(child, child.val_loc, strict=False):
            key = item.get(by) if isinstance(item, dict) else None
            if isinstance(key, str) and key in index:
                i = index[key]
                out_list[i] = merge(out_list[i], item, (*path, key))
                out_list.val_loc[i] = loc
            else:
                out_list.append(item)
                out_list.val_loc.append(loc)
        return out_list
    return child


def load_tree(
    path: Path,
    environ: Mapping[str, str],
    library: ParentTrees,
    stack: tuple[str, ...],
    expect_name: str | None = None,
) -> tuple[PosDict, Preset]:
    """The merged, validated tree of one file and its ``Preset``; ``PresetError`` otherwise."""
    file = str(path)
    data = parse(read_preset_text(path), file)
    if not isinstance(data, PosDict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise PresetError(
            Problem(
                Location(file, 1, 1),
                f"a preset file must be a mapping (name, description, topology, ...); this one is {kind}",
            )
        )
    problems: list[Problem] = []
    interpolate_tree(data, environ, problems, data.loc)
    tree = normalize(data, PresetSpec, problems, "")
    if "name" not in tree:
        tree["name"] = path.stem
        tree.key_loc["name"] = tree.val_loc["name"] = tree.loc
    elif expect_name and tree["name"] != expect_name:
        problems.append(
            Problem(
                tree.val_loc["name"],
                f"preset name {tree['name']!r} does not match its file name "
                f"{path.name!r}; the library finds presets by file name: rename one of them",
            )
        )
    parent = tree.get("extends")
    if isinstance(parent, str) and parent.strip():
        tree = _extend(tree, parent, path, environ, library, stack, problems)
    spec, found = schema_problems(tree, Preset)
    problems += found
    problems += semantic_problems(tree)
    if problems:
        raise PresetError(_sorted(problems))
    assert isinstance(spec, Preset)
    raw = plain(tree)
    spec._source = path
    spec._raw = raw
    spec._hash = content_hash(raw)
    return tree, spec


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def not_regular(path: Path, mode: int) -> PresetError | None:
    """The error for a preset path that is not a regular file (``None`` if it is one)."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a file")
    return PresetError(Problem(Location(str(path)), f"not a regular file ({kind}): a preset is a .yaml file"))


def read_preset_text(path: Path) -> str:
    """The text of a preset file. Anything but a regular file (a FIFO would block the read,
    ``/dev/zero`` never ends) and anything over ``MAX_TEXT`` bytes is refused before reading."""
    file = str(path)
    try:
        error = not_regular(path, os.stat(path).st_mode)
        if error:
            raise error
        # O_NONBLOCK: should the path become a FIFO after the check, open() must not wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            error = not_regular(path, info.st_mode)
            if error:
                raise error
            data = f.read(MAX_TEXT + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise PresetError(Problem(Location(file), f"cannot read preset file: {exc}")) from None
    if len(data) > MAX_TEXT:
        raise PresetError(
            Problem(
                Location(file),
                f"a preset file may hold at most {MAX_TEXT // (1024 * 1024)} MiB; this one is larger",
            )
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PresetError(Problem(Location(file), f"cannot read preset file: {exc}")) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # universal newlines, as read_text() did


def _extend(
    tree: PosDict,
    parent: str,
    path: Path,
    environ: Mapping[str, str],
    library: ParentTrees,
    stack: tuple[str, ...],
    problems: list[Problem],
) -> PosDict:
    where = tree.val_loc["extends"]
    if parent in stack:
        chain = " -> ".join((*stack[stack.index(parent) :], parent))
        problems.append(Problem(where, f"extends cycle: {chain}; a preset cannot extend itself"))
        return tree
    try:
        check_name(parent)
    except PresetError as exc:
        problems.append(Problem(where, f"invalid extends target: {exc.problems[0].message}"))
        return tree
    try:
        parent_tree = library.tree(parent, stack)
    except UnknownPresetError as exc:
        problems.append(
            Problem(
                where, f"unknown extends target {parent!r}; known presets: {', '.join(exc.known) or '(none)'}"
            )
        )
        return tree
    except PresetError as exc:
        problems.extend(exc.problems)
        return tree
    return merge(parent_tree, tree)


def _sorted(problems: list[Problem]) -> list[Problem]:
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.location.file, p.location.line, p.location.column))
