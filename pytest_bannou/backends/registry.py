"""Finding backends by name: built-ins plus the ``pytest_bannou.backends`` entry-point group."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from ..errors import BackendUnavailable
from ..topology.contract import ALIASES, BUILTIN, ENTRY_POINT_GROUP, canonical, known_names
from .base import Availability, Backend

__all__ = [
    "ALIASES",
    "AUTO_ORDER",
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "availability",
    "canonical",
    "known_names",
    "load",
]

# order in which --bannou-backend=auto tries engines that a preset allows
AUTO_ORDER = ("local", "compose", "swarm", "kubernetes", "portainer")


def load(name: str) -> type[Backend]:
    """The backend class called ``name`` (or an alias); a clear error when there is none."""
    cname = canonical(name)
    target = None
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == cname:
            target = ep.value
            break
    target = target or BUILTIN.get(cname)
    if target is None:
        raise BackendUnavailable(
            f"unknown backend {name!r}; known backends: {', '.join(known_names())} "
            f"(aliases: {', '.join(f'{a}={c}' for a, c in ALIASES.items())})"
        )
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailable(
            f"backend {cname!r} cannot be imported ({exc}); install its extra: "
            f"pip install 'pytest-bannou[{_extra_for(cname)}]'"
        ) from None
    return getattr(module, attr)


def availability(name: str) -> Availability:
    try:
        return load(name).available()
    except BackendUnavailable as exc:
        return Availability(False, exc.message)


def _extra_for(name: str) -> str:
    return {"compose": "docker", "swarm": "docker", "kubernetes": "kubernetes"}.get(name, "all")
