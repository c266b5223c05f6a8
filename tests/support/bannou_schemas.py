"""bannou's own event schemas (``../shared/upstream-schemas``, OpenAPI 3.0) as JSON Schema
validators, so tests check what the plugin publishes against bannou's files, not against the
plugin's idea of them.

OpenAPI 3.0 is JSON Schema with a few differences: ``nullable: true`` (a type plus null) and
``$ref`` into other files of the same directory; both are turned into plain JSON Schema here.
``format`` uuid and date-time are checked too.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

SCHEMAS_DIR = Path(
    os.environ.get("BANNOU_UPSTREAM_SCHEMAS")
    or Path(__file__).resolve().parents[3] / "shared" / "upstream-schemas"
)


@cache
def _document(name: str) -> dict[str, Any]:
    path = SCHEMAS_DIR / name
    if not path.exists():
        # also reached while a module is imported (its topics): a skip there skips that module
        # instead of ending the whole collection in an error
        where = f"bannou's schemas are not at {SCHEMAS_DIR} (set BANNOU_UPSTREAM_SCHEMAS)"
        pytest.skip(where, allow_module_level=True)
    return yaml.safe_load(path.read_text())


def _resolve(ref: str, current: str) -> tuple[dict[str, Any], str]:
    file, _, pointer = ref.partition("#")
    file = file or current
    node: Any = _document(file)
    for part in pointer.strip("/").split("/"):
        node = node[part]
    return node, file


def _plain(schema: Any, current: str) -> Any:
    """``schema`` as JSON Schema: refs inlined, ``nullable`` turned into a null type."""
    if isinstance(schema, list):
        return [_plain(s, current) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        target, file = _resolve(schema["$ref"], current)
        rest = {k: v for k, v in schema.items() if k not in ("$ref", "description")}
        return _plain({**target, **rest}, file)
    out = {k: _plain(v, current) for k, v in schema.items() if not k.startswith("x-") and k != "example"}
    if out.pop("nullable", False):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


_formats = jsonschema.FormatChecker()


@_formats.checks("uuid", raises=ValueError)
def _uuid(value: object) -> bool:
    return not isinstance(value, str) or bool(uuid.UUID(value))


@_formats.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    return not isinstance(value, str) or bool(datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo)


def validator(file: str, name: str) -> jsonschema.protocols.Validator:
    """A validator for component schema ``name`` of bannou's ``file``."""
    schema = _plain(_document(file)["components"]["schemas"][name], file)
    return jsonschema.Draft202012Validator(schema, format_checker=_formats)


def check_event(file: str, name: str, event: dict[str, Any]) -> None:
    """AssertionError listing every way ``event`` breaks bannou's schema ``name``."""
    errors = [
        f"{'/'.join(map(str, e.absolute_path)) or '(event)'}: {e.message}"
        for e in validator(file, name).iter_errors(event)
    ]
    assert not errors, f"{name} does not match bannou's {file}: " + "; ".join(errors)


def topic_of(file: str, name: str) -> str:
    """The topic bannou publishes event ``name`` on (``x-event-publications`` of ``file``)."""
    for item in _document(file)["info"].get("x-event-publications") or ():
        if item.get("event") == name:
            return item["topic"]
    raise AssertionError(f"{file} publishes no {name}")
