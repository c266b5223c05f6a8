"""results.json: write a RunReport, read one back with validation against results.schema.json.

The schema file is the documentation of the format and the validator reads it, so the two
cannot drift apart. The validator implements the part of JSON Schema the file uses (type,
enum, required, properties, additionalProperties, items, minimum, minLength, $ref) so that
reading needs no extra dependency; every error names the file, the field path and the fix.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any

from .._support.files import atomic_write
from .._support.text import utf8_strings
from ..errors import BannouError
from .model import SCHEMA_VERSION, FaultRecord, PresetRecord, RunReport, TestRecord, TimelineEvent

SCHEMA_PATH = Path(__file__).with_name("results.schema.json")


class ReportFileError(BannouError):
    """A results.json that cannot be read: missing, not JSON, or not matching the schema."""


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of results.json (parsed once)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def to_dict(report: RunReport) -> dict[str, Any]:
    """The JSON form of a report (timeline entries as objects, not arrays)."""
    data = asdict(report)
    for preset, record in zip(data["presets"], report.presets, strict=True):
        preset["timeline"] = [ev._asdict() for ev in record.timeline]
    return data


def from_dict(data: dict[str, Any], source: str = "<results>") -> RunReport:
    """Build a RunReport from its JSON form, validating it first."""
    validate(data, source)
    presets = [
        PresetRecord(
            **{k: v for k, v in p.items() if k not in ("timeline", "faults")},
            timeline=[TimelineEvent(e["event"], e["t_start"], e["t_end"]) for e in p.get("timeline", [])],
            faults=_faults(p),
        )
        for p in data["presets"]
    ]
    tests = [
        TestRecord(**{k: v for k, v in t.items() if k != "faults"}, faults=_faults(t)) for t in data["tests"]
    ]
    rest = {k: v for k, v in data.items() if k not in ("presets", "tests")}
    return RunReport(presets=presets, tests=tests, **rest)


def _faults(data: dict[str, Any]) -> list[FaultRecord]:
    """The ``faults`` of a preset or test (absent in files written before faults were recorded)."""
    return [FaultRecord(**f) for f in data.get("faults", [])]


def dumps(report: RunReport) -> str:
    """The JSON text of ``report``; any string in it becomes valid UTF-8 (see ``text``)."""
    return json.dumps(utf8_strings(to_dict(report)), indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(report: RunReport, path: str | os.PathLike[str]) -> Path:
    """Write ``report`` to ``path`` atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = dumps(report)
    atomic_write(path, text, mode=0o666)  # a report: readable as the umask allows
    return path


def read_json(path: str | os.PathLike[str]) -> RunReport:
    """Read and validate a results.json; a bad file raises ReportFileError naming file and field."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ReportFileError(
            f"{path}: no such results file (pass a results.json written by --bannou-report DIR)"
        ) from None
    except IsADirectoryError:
        raise ReportFileError(f"{path}: is a directory; pass the results.json inside it") from None
    except OSError as exc:  # not a directory on the way, name too long, no permission
        raise ReportFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ReportFileError(f"{path}: not UTF-8 text (byte {exc.start}); is this a results.json?") from None
    except json.JSONDecodeError as exc:
        raise ReportFileError(
            f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); the file may be truncated"
            " (a worker or job killed while writing) - re-run or drop it from the merge"
        ) from None
    except RecursionError:
        raise _too_deep(path) from None
    try:
        return from_dict(data, str(path))
    except RecursionError:
        raise _too_deep(path) from None


def _too_deep(path: Path) -> ReportFileError:
    """A results.json is a few levels deep: a file nested deeper than Python follows is not one."""
    return ReportFileError(
        f"{path}: JSON nested too deeply to read; this is not a results.json written by --bannou-report"
    )


def validate(data: Any, source: str = "<results>") -> None:
    """Raise ReportFileError for the first place where ``data`` breaks the schema."""
    if isinstance(data, dict):
        version = data.get("schema_version")
        if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
            raise ReportFileError(
                f"{source}: schema_version {version} was written by a newer pytest-bannou (this one reads"
                f" up to {SCHEMA_VERSION}); upgrade pytest-bannou to read it"
            )
    root = schema()
    problem = _check(data, root, root, "")
    if problem:
        where, message = problem
        raise ReportFileError(f"{source}: field {where or '(top level)'}: {message} (see {SCHEMA_PATH.name})")


_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v),
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
}


def _describe(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _check(value: Any, node: dict[str, Any], root: dict[str, Any], where: str) -> tuple[str, str] | None:
    """Return (field path, message) of the first violation, or None."""
    if "$ref" in node:
        ref = node["$ref"]
        target: Any = root
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        problem = _check(value, target, root, where)
        if problem:
            return problem
    types = node.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_TYPES[name](value) for name in names):
            return where, f"expected {' or '.join(names)}, got {_describe(value)}"
    if "enum" in node and value not in node["enum"]:
        return where, f"{_describe(value)} is not one of {', '.join(node['enum'])}"
    if isinstance(value, str) and len(value) < node.get("minLength", 0):
        return where, "must not be empty"
    if _TYPES["number"](value) and "minimum" in node and value < node["minimum"]:
        return where, f"{value} is below the minimum {node['minimum']}"
    if isinstance(value, dict):
        return _check_object(value, node, root, where)
    if isinstance(value, list) and "items" in node:
        for i, item in enumerate(value):
            problem = _check(item, node["items"], root, f"{where}[{i}]")
            if problem:
                return problem
    return None


def _check_object(value: dict[str, Any], node: dict[str, Any], root: dict[str, Any], where: str):
    props: dict[str, Any] = node.get("properties", {})
    prefix = f"{where}." if where else ""
    for name in node.get("required", []):
        if name not in value:
            return f"{prefix}{name}", "required field is missing"
    extra = node.get("additionalProperties", True)
    for name, item in value.items():
        path = f"{prefix}{name}"
        if name in props:
            problem = _check(item, props[name], root, path)
        elif extra is False:
            known = ", ".join(props)
            return path, f"unknown field (known fields here: {known})"
        elif isinstance(extra, dict):
            problem = _check(item, extra, root, path)
        else:
            problem = None
        if problem:
            return problem
    return None
