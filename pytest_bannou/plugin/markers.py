"""The ``preset`` marker: its arguments bound to a signature, and the override grammar.

``@pytest.mark.preset("a", "b", environment={...}, replicas={...})`` is validated by binding its
arguments to ``preset_marker_signature`` (as pytest-django does for its ``django_db`` marker), so
a wrong call gets Python's own message plus the usage. Keyword overrides make a derived
environment whose key says what differs: ``split-auth[env:FOO=1;replicas:bannou=2]``. The key
reaches the terminal and every report, so the value of a secret-looking variable is replaced by
``******#<hash>``: the short hash keeps two different secrets in two environments.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from .._support.masking import MASK, is_secret_key
from ..errors import BannouError

MARKER = "preset"
MARKER_HELP = (
    "preset(*names, environment=None, replicas=None): run the test in the environment of these "
    "presets (several names parametrize it: test[a], test[b]); environment={VAR: value} and "
    "replicas={node: n} make a derived environment"
)
USAGE = "use @pytest.mark.preset('name', ..., environment={'VAR': 'value'}, replicas={'node': 2})"
ENV_FIXTURES = frozenset({"bannou_env", "bannou_http"})
HASH_CHARS = 6  # of a masked value's sha256 in a key: distinct keys for distinct secrets


def preset_marker_signature(
    *names: str, environment: Mapping[str, Any] | None = None, replicas: Mapping[str, int] | None = None
) -> None:
    """The ``@pytest.mark.preset`` signature its arguments are validated against."""


@dataclass(frozen=True)
class MarkerSpec:
    names: tuple[str, ...]
    environment: tuple[tuple[str, str], ...] = ()
    replicas: tuple[tuple[str, int], ...] = ()


class MarkerError(BannouError):
    pass


@dataclass(frozen=True, slots=True)
class ItemEnv:
    """What one test needs: the preset, the environment key and whether it deploys at all."""

    preset: str
    key: str
    needs_env: bool
    marked: bool
    environment: tuple[tuple[str, str], ...] = ()
    replicas: tuple[tuple[str, int], ...] = ()


ITEM_ENV = pytest.StashKey[ItemEnv]()

_SIGNATURE = inspect.signature(preset_marker_signature)
_SPECS: dict[tuple[Any, ...], MarkerSpec] = {}  # valid markers by arguments (10,000 tests, few markers)


def uses_env(fixturenames: Iterable[str] | None) -> bool:
    """Whether a test requests an environment fixture (directly or through another fixture)."""
    return not ENV_FIXTURES.isdisjoint(fixturenames or ())


def parse_marker(marker: pytest.Mark, nodeid: str) -> MarkerSpec:
    """Validate a ``preset`` marker's arguments; ``MarkerError`` names the test and the fix."""
    try:
        key = (marker.args, repr(sorted(marker.kwargs.items())) if marker.kwargs else None)
        spec = _SPECS.get(key)
    except TypeError:  # unhashable arguments: validated (and rejected) below
        key, spec = None, None
    if spec is None:
        spec = _parse_marker(marker, nodeid)
        if key is not None:
            _SPECS[key] = spec
    return spec


def _parse_marker(marker: pytest.Mark, nodeid: str) -> MarkerSpec:
    try:
        bound = _SIGNATURE.bind(*marker.args, **marker.kwargs)
    except TypeError as exc:
        raise MarkerError(f"{nodeid}: invalid arguments to @pytest.mark.preset: {exc}; {USAGE}") from None
    args = bound.arguments
    names = _names(tuple(args.get("names", ())), nodeid)
    env_items = _environment(args.get("environment") or {}, nodeid)
    rep_items = _replicas(args.get("replicas") or {}, nodeid)
    return MarkerSpec(names, tuple(sorted(env_items)), tuple(sorted(rep_items)))


def _names(names: tuple[Any, ...], nodeid: str) -> tuple[str, ...]:
    if not names:
        raise MarkerError(f"{nodeid}: @pytest.mark.preset needs at least one preset name; {USAGE}")
    for n in names:
        if not isinstance(n, str) or not n.strip():
            raise MarkerError(f"{nodeid}: @pytest.mark.preset: preset names are strings, got {n!r}; {USAGE}")
    if len(set(names)) != len(names):
        raise MarkerError(f"{nodeid}: @pytest.mark.preset names a preset twice: {', '.join(names)}")
    return names


def _environment(environment: Any, nodeid: str) -> list[tuple[str, str]]:
    if not isinstance(environment, Mapping):
        raise MarkerError(
            f"{nodeid}: @pytest.mark.preset(environment=...) must be a mapping VAR -> value, "
            f"got {type(environment).__name__}; {USAGE}"
        )
    items = []
    for k, v in environment.items():
        if not isinstance(k, str) or not k or isinstance(v, Mapping | list | tuple | set) or v is None:
            shown = MASK if isinstance(k, str) and is_secret_key(k) else repr(v)
            raise MarkerError(
                f"{nodeid}: @pytest.mark.preset(environment=...): {k!r}: {shown} is not VAR -> string value"
            )
        items.append((k, str(v).lower() if isinstance(v, bool) else str(v)))
    return items


def _replicas(replicas: Any, nodeid: str) -> list[tuple[str, int]]:
    if not isinstance(replicas, Mapping):
        raise MarkerError(
            f"{nodeid}: @pytest.mark.preset(replicas=...) must be a mapping node -> count, "
            f"got {type(replicas).__name__}; {USAGE}"
        )
    items = []
    for k, v in replicas.items():
        if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise MarkerError(
                f"{nodeid}: @pytest.mark.preset(replicas=...): {k!r}: {v!r} is not node -> count >= 0"
            )
        items.append((k, v))
    return items


def masked_value(key: str, value: str) -> str:
    """``value`` as a key or message shows it: a secret's is ``******#1a2b3c`` (a short hash, so
    two secrets stay apart without either being readable)."""
    if not is_secret_key(key):
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]
    return f"{MASK}#{digest}"


def derived_key(
    name: str, environment: tuple[tuple[str, str], ...] = (), replicas: tuple[tuple[str, int], ...] = ()
) -> str:
    """``split-auth`` or, with overrides, ``split-auth[env:FOO=1;replicas:bannou=2]`` (secret
    values masked, see ``masked_value``)."""
    parts = []
    if environment:
        parts.append("env:" + ",".join(f"{k}={masked_value(k, v)}" for k, v in environment))
    if replicas:
        parts.append("replicas:" + ",".join(f"{k}={v}" for k, v in replicas))
    return f"{name}[{';'.join(parts)}]" if parts else name


class ClosestMarker:
    """``item.get_closest_marker("preset")`` without walking up the node chain per item: the
    item's own markers (function and parameter marks) come first, then its parent's closest
    marker, looked up once per class or module."""

    def __init__(self) -> None:
        self._parents: dict[pytest.Node, pytest.Mark | None] = {}

    def __call__(self, item: pytest.Item) -> pytest.Mark | None:
        for mark in getattr(item, "own_markers", ()):
            if mark.name == MARKER:
                return mark
        parent = item.parent
        if parent is None:
            return None
        try:
            return self._parents[parent]
        except KeyError:
            marker = self._parents[parent] = parent.get_closest_marker(MARKER)
            return marker
