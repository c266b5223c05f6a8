"""Finding backends by name: built-ins plus the ``pytest_bannou.backends`` entry-point group."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points

from ..errors import BackendUnavailable
from ..topology.contract import ALIASES, BUILTIN, ENTRY_POINT_GROUP, canonical, known_names
from .base import Availability, Backend

__all__ = [
    "ALIASES",
    "AUTO",
    "AUTO_ORDER",
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "Choice",
    "availability",
    "canonical",
    "choose",
    "find",
    "in_use",
    "known_names",
    "load",
    "resolve",
]

AUTO = "auto"  # --bannou-backend=auto: the first available engine of AUTO_ORDER
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


def resolve(name: str) -> type[Backend]:
    """The backend class for ``name``; ``auto`` picks the first available of AUTO_ORDER.
    Raises ``BackendUnavailable`` with the reason and how to get the engine."""
    if canonical(name) == AUTO:
        reasons = []
        for candidate in AUTO_ORDER:
            try:
                cls = load(candidate)
            except BackendUnavailable as exc:
                reasons.append(f"{candidate}: {exc.message}")
                continue
            avail = cls.available()
            if avail:
                return cls
            reasons.append(f"{candidate}: {avail.reason}")
        raise BackendUnavailable(
            "--bannou-backend=auto: no backend is available here:\n  " + "\n  ".join(reasons)
        )
    cls = load(name)
    avail = cls.available()
    if not avail:
        raise BackendUnavailable(f"backend {canonical(name)!r} is not available here: {avail.reason}")
    return cls


def in_use(request: str) -> list[str]:
    """Canonical backend names a session with ``--bannou-backend=request`` may deploy on."""
    if canonical(request) == AUTO:
        return [n for n in AUTO_ORDER if availability(n)]
    return [canonical(request)]


def find(name: str) -> type[Backend] | None:
    """The backend class called ``name``, or None when there is none (no error: for callers
    asking an optional capability of an environment's backend)."""
    try:
        return load(name)
    except BackendUnavailable:
        return None


@dataclass(frozen=True)
class Choice:
    """Where one preset runs in a session: a canonical backend name, or None and why not
    (its tests are skipped with that reason)."""

    backend: str | None
    reason: str = ""


def choose(
    request: str,
    required: Sequence[str],
    preset: str,
    check: Callable[[str], Availability] = availability,
) -> Choice:
    """The backend ``preset`` (whose ``requiredBackends`` are ``required``) runs on under
    ``--bannou-backend=request``. An explicit backend the preset does not allow: skipped.
    ``auto``: the first of ``required`` that ``check`` finds available (no requirement: the
    first available of AUTO_ORDER, as ``resolve`` picks); none available: skipped with why."""
    name = canonical(request)
    needs = list(dict.fromkeys(canonical(b) for b in required))
    wanted = " or ".join(needs)
    if name != AUTO:
        if needs and name not in needs:
            return Choice(
                None,
                f"preset {preset!r} needs backend {wanted} (requiredBackends), this session runs on "
                f"{name}; select one with --bannou-backend={needs[0]} or --bannou-backend=auto",
            )
        return Choice(name)
    reasons = []
    for candidate in needs or AUTO_ORDER:
        avail = check(candidate)
        if avail:
            return Choice(candidate)
        reasons.append(f"{candidate}: {avail.reason}")
    if not needs:
        return Choice(AUTO)  # the session's own backend reports that nothing is available
    return Choice(
        None,
        f"preset {preset!r} needs backend {wanted} (requiredBackends) and none is available here: "
        + "; ".join(reasons),
    )
