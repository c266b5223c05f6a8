"""``${VAR}`` interpolation in preset string values, compose-style, never through a shell.

Forms: ``${VAR}`` (unset is an error), ``${VAR:-default}`` (default when unset or empty),
``${VAR-default}`` (default when unset), ``${VAR:?message}`` / ``${VAR?message}`` (error with
the message), ``$$`` (a literal ``$``). A ``$`` followed by anything else is kept as written.
Nesting (``${A:-${B}}``) is not supported and says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import Location, PresetError, Problem
from .yamlpos import PosDict, PosList

_TOKEN = re.compile(r"\$(?:(\$)|\{([^{}]*)\})|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NESTED = re.compile(r"[^{}]*\$\{")  # after an unclosed "${": another "${" before any brace
_OPS = (":-", ":?", "-", "?")


class InterpolationError(ValueError):
    """One bad ``${...}`` in one string; turned into a ``Problem`` by the caller."""


def interpolate_string(value: str, environ: Mapping[str, str]) -> str:
    """Expand one string; ``InterpolationError`` names the variable on failure."""
    if "$" not in value:
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return "$"
        body = m.group(2)
        if body is None:
            if _NESTED.match(value, m.end()):
                raise InterpolationError(
                    f"nested `${{...}}` inside `${{...}}` in {value!r} is not supported: give the "
                    "default as plain text (`${A:-text}`), or set the variable itself"
                )
            raise InterpolationError(f"unterminated `${{` in {value!r}: close it with `}}` or write `$$`")
        name_match = _NAME.match(body)
        if not name_match:
            raise InterpolationError(
                f"invalid variable reference `${{{body}}}`: expected ${{NAME}}, ${{NAME:-default}} "
                "or ${NAME:?message} (write `$$` for a literal `$`)"
            )
        name = name_match.group(0)
        rest = body[name_match.end() :]
        op = next((o for o in _OPS if rest.startswith(o)), None)
        if rest and op is None:
            raise InterpolationError(
                f"invalid variable reference `${{{body}}}`: after the name expected `:-`, `-`, `:?` or `?`"
            )
        arg = rest[len(op) :] if op else ""
        current = environ.get(name)
        if op is None:
            if current is None:
                raise InterpolationError(
                    f"environment variable {name} is not set (used as `${{{name}}}`); set it, "
                    f"or give a default with `${{{name}:-default}}`"
                )
            return current
        if op == ":-":
            return current if current else arg
        if op == "-":
            return current if current is not None else arg
        if (op == ":?" and not current) or (op == "?" and current is None):
            raise InterpolationError(f"environment variable {name} is required: {arg or 'it is not set'}")
        return current or ""

    return _TOKEN.sub(sub, value)


def interpolate_tree(data: Any, environ: Mapping[str, str], problems: list[Problem], where: Location) -> Any:
    """Expand every string value (not keys) in place; one ``Problem`` per bad string."""
    if isinstance(data, PosDict):
        for key in list(data):
            data[key] = _one(data[key], environ, problems, data.val_loc.get(key, where))
    elif isinstance(data, PosList):
        for i, item in enumerate(data):
            data[i] = _one(item, environ, problems, data.val_loc[i] if i < len(data.val_loc) else where)
    elif isinstance(data, str):
        return _one(data, environ, problems, where)
    return data


def _one(value: Any, environ: Mapping[str, str], problems: list[Problem], loc: Location) -> Any:
    if isinstance(value, str):
        try:
            return interpolate_string(value, environ)
        except InterpolationError as exc:
            problems.append(Problem(loc, str(exc)))
            return value
    if isinstance(value, (PosDict, PosList)):
        interpolate_tree(value, environ, problems, loc)
    return value


def expand(value: str, environ: Mapping[str, str], file: str = "<string>") -> str:
    """Expand a single string outside a preset tree (raises ``PresetError``)."""
    try:
        return interpolate_string(value, environ)
    except InterpolationError as exc:
        raise PresetError(Problem(Location(file), str(exc))) from None
