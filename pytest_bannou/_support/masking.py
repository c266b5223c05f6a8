"""Masking of secret environment values wherever the plugin prints or writes an environment.

A key looks secret when one of its ``_``/``-``/``.``-separated words (or its camel-case humps)
is PASSWORD, PASSWD, TOKEN, SECRET, KEY, APIKEY or CREDENTIAL(S): ``MYSQL_ROOT_PASSWORD``,
``authToken``, ``AWS_SECRET_ACCESS_KEY``. Whole words only, so ``KEYCLOAK_URL`` or ``MONKEY``
stay readable. The values of such keys are replaced by ``MASK`` in mappings and, through
``mask_text``, in free text (logs, report sections, plans) where they may appear verbatim.

Pure module: no pytest, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "******"
SECRET_WORDS = frozenset(
    {"PASSWORD", "PASSWD", "PWD", "TOKEN", "SECRET", "KEY", "APIKEY", "CREDENTIAL", "CREDENTIALS"}
)
MIN_SECRET_LENGTH = 3  # shorter values ("1", "no") would mask unrelated text everywhere

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def is_secret_key(key: str) -> bool:
    """Whether ``key`` names a secret (see the module docstring for the rule)."""
    words = {w.upper() for part in re.split(r"[_\-.\s]+", str(key)) for w in _WORDS.findall(part)}
    return not SECRET_WORDS.isdisjoint(words)


def mask_environment(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``mapping`` with the values of secret-looking keys replaced by ``MASK``."""
    return {k: (MASK if is_secret_key(k) and v not in (None, "") else v) for k, v in mapping.items()}


def secret_values(*mappings: Mapping[str, Any]) -> set[str]:
    """The values of secret-looking keys in ``mappings`` (what ``mask_text`` hides)."""
    out = set()
    for mapping in mappings:
        for k, v in mapping.items():
            if v is not None and is_secret_key(k) and len(str(v)) >= MIN_SECRET_LENGTH:
                out.add(str(v))
    return out


def topology_secrets(topologies: Iterable[Any]) -> set[str]:
    """Secret values of every node and tester environment of resolved topologies."""
    out: set[str] = set()
    for topo in topologies:
        for node in getattr(topo, "nodes", ()):
            out |= secret_values(getattr(node, "environment", {}) or {})
        for tester in getattr(topo, "testers", ()):
            out |= secret_values(getattr(tester, "environment", {}) or {})
    return out


def mask_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by ``MASK`` (longest first, so a
    secret containing another is masked whole)."""
    for value in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def mask_data(data: Any, secrets: Iterable[str]) -> Any:
    """JSON-like ``data`` with secret-looking keys masked and secret values masked in strings."""
    found = set(secrets)
    return _mask(data, found)


def _mask(data: Any, secrets: set[str]) -> Any:
    if isinstance(data, Mapping):
        return {
            k: (MASK if is_secret_key(str(k)) and isinstance(v, str) and v else _mask(v, secrets))
            for k, v in data.items()
        }
    if isinstance(data, list | tuple):
        return [_mask(v, secrets) for v in data]
    if isinstance(data, str):
        return mask_text(data, secrets)
    return data
