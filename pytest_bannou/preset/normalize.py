"""Key spellings -> field names, and unknown keys -> errors that suggest the nearest key.

bannou writes camelCase; ``asset-processing.yaml`` writes snake_case; Dapr-era files write
``daprAppId`` / ``daprEnabled``. All of them are mapped onto the model's field names here, so
that ``extends`` merging, hashing and validation see one spelling, and an unknown key gets a
message with the file:line of the key and a "did you mean" drawn from the model itself.
"""

from __future__ import annotations

import difflib
import types
import typing
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from ..errors import Problem
from .schema import EXTRA_ALIASES
from .yamlpos import PosDict, PosList


@cache
def spellings(model: type[BaseModel]) -> dict[str, str]:
    """Every accepted key of ``model`` -> its field name."""
    out: dict[str, str] = {}
    for name in model.model_fields:
        out[name] = name
        out[to_camel(name)] = name
        for alias in EXTRA_ALIASES.get(name, ()):
            out[alias] = name
    return out


def display(field: str) -> str:
    """The spelling used in messages: bannou's camelCase."""
    return to_camel(field)


def _unwrap(annotation: Any) -> tuple[str, Any] | None:
    """('model', cls) / ('list', inner) / ('dict', inner) for the shapes we recurse into."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                found = _unwrap(arg)
                if found:
                    return found
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return ("model", annotation)
    if origin is list:
        inner = typing.get_args(annotation)[0]
        return ("list", inner) if _unwrap(inner) else None
    if origin is dict:
        inner = typing.get_args(annotation)[1]
        return ("dict", inner) if _unwrap(inner) else None
    return None


def normalize(data: Any, model: type[BaseModel], problems: list[Problem], context: str) -> Any:
    """A copy of ``data`` with field names as keys; unknown keys are reported and dropped."""
    if not isinstance(data, PosDict):
        return data  # wrong type: pydantic reports it with the right location
    accepted = spellings(model)
    out = PosDict(data.loc)
    seen_as: dict[str, str] = {}
    for key, value in data.items():
        field = accepted.get(key)
        if field is None:
            problems.append(Problem(data.key_loc[key], _unknown(key, model, context)))
            continue
        if field in seen_as:
            problems.append(
                Problem(
                    data.key_loc[key],
                    f"`{key}` and `{seen_as[field]}` both set `{display(field)}`{context}; keep one",
                )
            )
            continue
        seen_as[field] = key
        sub = _unwrap(model.model_fields[field].annotation)
        out[field] = _descend(value, sub, problems, _context(field, value, context), ITEM_LABEL.get(field))
        out.key_loc[field] = data.key_loc[key]
        out.val_loc[field] = data.val_loc[key]
    return out


ITEM_LABEL = {"nodes": "node", "testers": "tester", "processing_pools": "processing pool"}


def _descend(
    value: Any, sub: tuple[str, Any] | None, problems: list[Problem], context: str, label: str | None = None
) -> Any:
    if sub is None:
        return value
    kind, inner = sub
    if kind == "model":
        return normalize(value, inner, problems, context)
    if kind == "list" and isinstance(value, PosList):
        out = PosList(value.loc)
        inner_sub = _unwrap(inner)
        for i, item in enumerate(value):
            out.append(_descend(item, inner_sub, problems, _item_context(item, label or "item", i)))
            out.val_loc.append(value.val_loc[i])
        return out
    if kind == "dict" and isinstance(value, PosDict):
        out = PosDict(value.loc)
        inner_sub = _unwrap(inner)
        for key, item in value.items():
            out[key] = _descend(item, inner_sub, problems, f"{context} `{key}`")
            out.key_loc[key] = value.key_loc[key]
            out.val_loc[key] = value.val_loc[key]
        return out
    return value


def _context(field: str, value: Any, parent: str) -> str:
    if field == "topology":
        return " in `topology`"
    if field == "infrastructure":
        return " in infrastructure"
    if field == "healthcheck":
        return f" in healthcheck{parent}"
    if field == "resources":
        return f" in resources{parent}"
    return parent


def _item_context(item: Any, label: str, index: int) -> str:
    if isinstance(item, dict):
        for key in ("name", "poolType", "pool_type"):
            if isinstance(item.get(key), str):
                return f" in {label} `{item[key]}`"
    return f" in {label} #{index + 1}"


def _unknown(key: str, model: type[BaseModel], context: str) -> str:
    known = sorted({display(f) for f in model.model_fields})
    candidates = sorted(spellings(model))
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(key.lower(), [c.lower() for c in candidates], n=1, cutoff=0.6)
        close = (
            [display(spellings(model)[next(c for c in candidates if c.lower() == close[0])])] if close else []
        )
    if close:
        field = spellings(model)[close[0]] if close[0] in spellings(model) else close[0]
        return f"unknown key `{key}`{context}; did you mean `{display(field)}`?"
    return f"unknown key `{key}`{context}; known keys: {', '.join(known)}"
