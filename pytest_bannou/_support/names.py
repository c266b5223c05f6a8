"""One sanitizer for the names the plugin gives to things: containers, Compose projects, Swarm
services, Kubernetes objects and labels, files in the run directory.

``sanitize`` is the one rule (keep a character class, replace each run of anything else with one
separator, trim the ends, cut to a length); the named helpers below fix its parameters for each
kind of name, so every engine spells a kind of name the same way.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache


@cache
def _pattern(allowed: str) -> re.Pattern[str]:
    return re.compile(f"[^{allowed}]+")


def sanitize(
    text: str,
    *,
    allowed: str = "a-z0-9_-",
    lower: bool = True,
    sep: str = "-",
    trim: str = "-_",
    max_len: int = 63,
    fallback: str = "",
    collapse: bool = True,
) -> str:
    """``text`` reduced to the character class ``allowed`` (regex class syntax).

    Each run of other characters becomes one ``sep``; with ``collapse`` repeated separators
    become one; ``trim`` characters are removed from both ends, before and after cutting to
    ``max_len``; an empty result becomes ``fallback``.
    """
    s = text.lower() if lower else text
    s = _pattern(allowed).sub(sep, s)
    if collapse and sep:
        s = re.sub(f"(?:{re.escape(sep)}){{2,}}", sep, s)
    s = s.strip(trim)
    return (s or fallback)[:max_len].rstrip(trim)


def resource_name(text: str, max_len: int = 63) -> str:
    """Docker names (Compose projects and services, Swarm services, volumes): lowercase
    ``[a-z0-9_-]``, starting and ending with a letter or digit."""
    return sanitize(text, max_len=max_len, fallback="bannou")


def dns_label(text: str, max_len: int = 63) -> str:
    """A DNS-1123 label (Kubernetes namespaces and objects): lowercase ``[a-z0-9-]``; may be empty."""
    return sanitize(text, allowed="a-z0-9-", trim="-", max_len=max_len)


def label_value(text: str, max_len: int = 63) -> str:
    """A Kubernetes label value: ``[A-Za-z0-9._-]``, alphanumeric at both ends; may be empty."""
    return sanitize(text, allowed="A-Za-z0-9._-", lower=False, trim="._-", max_len=max_len, collapse=False)


def file_name(text: str, fallback: str = "file", max_len: int = 200) -> str:
    """A file name (no directory parts, no leading dot): ``[A-Za-z0-9_.-]``, others become ``_``."""
    return sanitize(
        text, allowed="A-Za-z0-9_.-", lower=False, sep="_", trim="._", max_len=max_len, fallback=fallback
    )


def with_hash(text: str, clean: str, max_len: int) -> str:
    """``clean`` when it is ``text`` unchanged and fits, else cut with a short hash of ``text``
    appended, so two different names never map to the same one."""
    if clean == text and len(clean) <= max_len:
        return clean
    digest = hashlib.sha256(text.encode()).hexdigest()[:6]
    return f"{clean[: max_len - 7].rstrip('-_')}-{digest}"
