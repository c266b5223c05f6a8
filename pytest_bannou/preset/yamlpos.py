"""YAML loading that remembers where every key and value came from.

Validation errors must point at ``FILE:LINE:COL``; PyYAML's constructed objects forget their
marks, so we compose the node graph with ``SafeLoader`` and build our own containers
(``PosDict`` / ``PosList``) that carry a ``Location`` per key and per value. Scalars are
constructed by PyYAML itself, so YAML 1.1 typing (ints, bools, nulls) is unchanged.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..errors import Location, PresetError, Problem

MAX_NODES = 200_000  # guards against alias bombs ("billion laughs") made of many small nodes
# ... and this against few aliases to a long string: the characters of every scalar (keys too),
# counted once per use, so an alias counts as often as it is used. A preset is a few kilobytes;
# 8 MiB leaves room for anything real and keeps a hostile file from exhausting memory later
# (validation, hashing and JSON copy the expanded text). Also the largest file that is read.
MAX_TEXT = 8 * 1024 * 1024
# a preset is a few levels deep (topology.nodes[].healthcheck.command[] is 5); every later step
# (interpolation, validation, hashing) walks the tree recursively, so depth is bounded here
MAX_DEPTH = 100
# libyaml's parser when PyYAML was built with it (about 10x faster); both record node marks
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class PosDict(dict):
    """A mapping with the location of each key (``key_loc``) and value (``val_loc``)."""

    def __init__(self, loc: Location) -> None:
        super().__init__()
        self.loc = loc
        self.key_loc: dict[Any, Location] = {}
        self.val_loc: dict[Any, Location] = {}


class PosList(list):
    """A sequence with the location of each item (``val_loc``)."""

    def __init__(self, loc: Location) -> None:
        super().__init__()
        self.loc = loc
        self.val_loc: list[Location] = []


def _loc(file: str, mark: yaml.Mark | None) -> Location:
    if mark is None:
        return Location(file)
    return Location(file, mark.line + 1, mark.column + 1)


def parse(text: str, file: str) -> Any:
    """Parse one YAML document into Pos containers; every problem raised as ``PresetError``."""
    loader = _LOADER(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            what = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
            raise PresetError(Problem(_loc(file, mark), f"malformed YAML: {what}")) from None
        except yaml.YAMLError as exc:
            raise PresetError(Problem(Location(file), f"malformed YAML: {exc}")) from None
        if node is None:
            return None
        builder = _Builder(loader, file)
        data = builder.build(node)
        if builder.problems:
            raise PresetError(builder.problems)
        return data
    finally:
        dispose = getattr(loader, "dispose", None)
        if dispose:
            dispose()


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.problems: list[Problem] = []
        self.count = 0
        self.text = 0  # characters of scalar text built so far, aliases expanded
        self.where: Location | None = None  # the mapping or list being built (an alias has no mark)
        self.stack: set[int] = set()

    def build(self, node: yaml.Node) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise PresetError(
                Problem(_loc(self.file, node.start_mark), f"document too large (over {MAX_NODES} nodes)")
            )
        if id(node) in self.stack:
            self.problems.append(Problem(_loc(self.file, node.start_mark), "recursive YAML alias"))
            return None
        if len(self.stack) >= MAX_DEPTH:
            raise PresetError(
                Problem(
                    _loc(self.file, node.start_mark),
                    f"nested more than {MAX_DEPTH} levels deep: a preset is a few levels deep;"
                    " flatten this value",
                )
            )
        self.stack.add(id(node))
        tag = {yaml.MappingNode: "tag:yaml.org,2002:map", yaml.SequenceNode: "tag:yaml.org,2002:seq"}
        expected = tag.get(type(node))
        if expected and node.tag != expected:
            self.problems.append(
                Problem(_loc(self.file, node.start_mark), f"unsupported YAML tag {node.tag!r}: remove it")
            )
        outer = self.where
        try:
            if isinstance(node, yaml.MappingNode):
                self.where = _loc(self.file, node.start_mark)
                return self._mapping(node)
            if isinstance(node, yaml.SequenceNode):
                out = PosList(_loc(self.file, node.start_mark))
                self.where = out.loc
                for item in node.value:
                    out.append(self.build(item))
                    out.val_loc.append(_loc(self.file, item.start_mark))
                return out
            return self._scalar(node)
        finally:
            self.where = outer
            self.stack.discard(id(node))

    def _scalar(self, node: yaml.Node) -> Any:
        self.text += len(node.value) if isinstance(node.value, str) else 0
        if self.text > MAX_TEXT:
            raise PresetError(
                Problem(
                    self.where or _loc(self.file, node.start_mark),
                    f"YAML aliases expand this document past {MAX_TEXT // (1024 * 1024)} MiB of text "
                    f"(every use of an alias counts; here the value at line {node.start_mark.line + 1}): "
                    "a preset does not need that much; write the values out or use fewer aliases",
                )
            )
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or node.start_mark
            self.problems.append(Problem(_loc(self.file, mark), f"invalid YAML value: {exc.problem}"))
            return None
        except (ValueError, TypeError, OverflowError) as exc:
            self.problems.append(Problem(_loc(self.file, node.start_mark), f"invalid YAML value: {exc}"))
            return None
        if not isinstance(value, (str, int, float, bool, type(None))):
            # dates, binary and the like: keep the text the user wrote
            value = node.value if isinstance(node.value, str) else str(value)
        return value

    def _mapping(self, node: yaml.MappingNode) -> PosDict:
        own = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
        try:
            self.loader.flatten_mapping(node)  # resolves "<<" merge keys
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or node.start_mark
            self.problems.append(Problem(_loc(self.file, mark), f"invalid merge key: {exc.problem}"))
        merged = len(node.value) - own  # pairs copied in by "<<" come first and may be overridden
        out = PosDict(_loc(self.file, node.start_mark))
        from_merge: set[str] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            key_loc = _loc(self.file, key_node.start_mark)
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(Problem(key_loc, "a key must be a plain name, not a list or mapping"))
                continue
            key = self._scalar(key_node)
            if key is None or isinstance(key, bool):
                key = key_node.value
            key = str(key)
            if key in out and key not in from_merge:
                first = out.key_loc[key]
                self.problems.append(
                    Problem(key_loc, f"duplicate key `{key}` (first defined at line {first.line})")
                )
                continue
            if index < merged:
                from_merge.add(key)
            else:
                from_merge.discard(key)
            out[key] = self.build(value_node)
            out.key_loc[key] = key_loc
            out.val_loc[key] = _loc(self.file, value_node.start_mark)
        return out


def plain(data: Any) -> Any:
    """Pos containers -> plain dicts and lists (for pydantic, hashing and ``Preset.raw``)."""
    if isinstance(data, dict):
        return {k: plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [plain(v) for v in data]
    return data
