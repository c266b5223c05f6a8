"""Masking of secret environment values wherever the plugin prints or writes an environment.

A key looks secret when one of its ``_``/``-``/``.``-separated words (or its camel-case humps)
is PASSWORD, PASSWD, PWD, PASS, TOKEN, SECRET, KEY, APIKEY, CREDS, CREDENTIAL(S) or SALT:
``MYSQL_ROOT_PASSWORD``, ``authToken``, ``AWS_SECRET_ACCESS_KEY``, ``AUTH_PASS``, ``GIT_CREDS``,
``CONNECT_SERVER_SALT`` (bannou's session-hashing salt);
or when a word *ends* with PASSWORD, PASSWD, SECRET, TOKEN, APIKEY, PRIVATEKEY or CREDENTIALS
(``ADMINPASSWORD``, ``SSH_PRIVATEKEY``). Otherwise whole words only, so ``KEYCLOAK_URL``,
``MONKEY`` or ``TOKENIZER_MODE`` stay readable. The values of such keys are replaced by ``MASK``
in mappings (whatever their length) and, through ``mask_text``, in free text (logs, report
sections, plans) where they may appear verbatim.

Secrets inside values are masked too, in mappings and in free text, whatever their length:
the password of a URL (``postgres://u:PASS@h``, ``redis://:PASS@h``), the value of a secret
key written ``KEY=VALUE`` (connection strings ``Password=...;``, ``Pwd=...``, command lines
``--password=...``), ``"KEY": "VALUE"`` (JSON) or ``KEY: VALUE`` (upper-case keys, as in YAML
environments). A bare short value ("1", "no") is never masked on its own, so unrelated text
stays readable.

Pure module: no pytest, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any

MASK = "******"
SECRET_WORDS = frozenset(
    {"PASSWORD", "PASSWD", "PWD", "PASS", "TOKEN", "SECRET", "KEY", "APIKEY", "CREDENTIAL", "CREDENTIALS"}
    | {"CREDS", "PRIVATEKEY", "PASSPHRASE", "SALT"}
)
# a word ending with one of these is secret too (ADMINPASSWORD, SSH_PRIVATEKEY, DBSECRET)
SECRET_SUFFIXES = (
    "PASSWORD", "PASSWD", "SECRET", "TOKEN", "APIKEY", "PRIVATEKEY", "CREDENTIALS", "PASSPHRASE",
)  # fmt: skip
MIN_SECRET_LENGTH = 3  # shorter values ("1", "no") would mask unrelated text everywhere

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


# scheme://user:PASSWORD@host (user may be empty)
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<value>[^@/\s]+)(?=@)")
# KEY=, "KEY": , KEY: (upper-case key) ... (blanks around the separator, never a line break: an
# empty value must not take the next line with it)
_KEY_SEP = re.compile(
    r"""(?<![\w.-])(?P<kq>["']?)(?P<key>-{0,2}[A-Za-z_][\w.-]*)(?P=kq)(?P<sep>[ \t]*=[ \t]*|[ \t]*:[ \t]*)"""
)
# ... then VALUE: quoted, or up to a blank , ; & ) ] } > or a quote
# a value masked already: ``******`` or, in the key of a derived environment, ``******#1a2b3c``
_MASKED = re.compile(re.escape(MASK) + r"(?:#[0-9a-f]{1,64})?")
_VALUE = re.compile(r""""[^"\n]*"|'[^'\n]*'|[^\s"',;&)\]}>]+""")


@lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Whether ``key`` names a secret (see the module docstring for the rule)."""
    words = {w.upper() for part in re.split(r"[_\-.\s]+", str(key)) for w in _WORDS.findall(part)}
    if not SECRET_WORDS.isdisjoint(words):
        return True
    return any(w.endswith(SECRET_SUFFIXES) for w in words)


def _secret_values_in(text: str) -> Iterator[tuple[int, int]]:
    """Spans of the values of secret keys written in ``text`` (quotes excluded), in order."""
    pos = 0
    for m in _KEY_SEP.finditer(text):
        if m.start() < pos or not is_secret_key(m["key"]):
            continue
        if "=" not in m["sep"] and not m["kq"] and not m["key"].isupper():
            continue  # "key: value" in prose; only KEY: VALUE (env style) or "key": value (JSON)
        v = _VALUE.match(text, m.end())
        if v is None:
            continue
        start, end = v.span()
        if text[start] in "\"'":
            start, end = start + 1, end - 1
        if end > start and not _MASKED.fullmatch(text, start, end):
            yield start, end
        pos = v.end()


def without_secrets(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``mapping`` with nothing to mask, for a record that must hold no secret: a
    secret key (``password``, ``api_key``) and a value with a URL password are left out."""
    return {k: v for k, v in mapping.items() if mask_inline(f"{k}={v}") == f"{k}={v}"}


def mask_inline(text: str) -> str:
    """``text`` with the secrets it writes out masked whatever their length: URL passwords and
    the values of secret keys (``KEY=VALUE``, ``"KEY": "VALUE"``, ``KEY: VALUE``, ``--password=X``)."""
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    if "=" not in text and ":" not in text:
        return text
    parts, pos = [], 0
    for start, end in _secret_values_in(text):
        parts += [text[pos:start], MASK]
        pos = end
    return "".join(parts) + text[pos:] if parts else text


def _embedded(value: str) -> set[str]:
    """Secrets written inside a value (URL passwords, ``Password=...`` parts)."""
    found = {m["value"] for m in _URL_PASSWORD.finditer(value)}
    return found | {value[start:end] for start, end in _secret_values_in(value)}


def mask_environment(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``mapping`` with the values of secret-looking keys replaced by ``MASK`` (any
    length) and secrets written inside other values (URLs, connection strings) masked."""
    out: dict[str, Any] = {}
    for k, v in mapping.items():
        if is_secret_key(k) and v not in (None, ""):
            out[k] = MASK
        elif isinstance(v, str):
            out[k] = mask_inline(v)
        else:
            out[k] = v
    return out


def secret_values(*mappings: Mapping[str, Any]) -> set[str]:
    """The values of secret-looking keys in ``mappings`` and the secrets written inside any value
    (what ``mask_text`` hides wherever they appear); values shorter than ``MIN_SECRET_LENGTH``
    are left to the contextual rules of ``mask_inline``."""
    out = set()
    for mapping in mappings:
        for k, v in mapping.items():
            if v is None:
                continue
            if is_secret_key(k):
                out.add(str(v))
            elif isinstance(v, str):
                out |= _embedded(v)
    return {v for v in out if len(v) >= MIN_SECRET_LENGTH}


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
    secret containing another is masked whole), then the secrets it writes out in context
    (``mask_inline``) masked whatever their length."""
    for value in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        text = text.replace(value, MASK)
    return mask_inline(text)


def mask_data(data: Any, secrets: Iterable[str]) -> Any:
    """JSON-like ``data`` with secret-looking keys masked and secret values masked in strings."""
    found = set(secrets)
    return _mask(data, found)


def _mask(data: Any, secrets: set[str]) -> Any:
    if isinstance(data, Mapping):
        return {
            k: (MASK if is_secret_key(str(k)) and _scalar(v) else _mask(v, secrets)) for k, v in data.items()
        }
    if isinstance(data, list | tuple):
        return [_mask(v, secrets) for v in data]
    if isinstance(data, str):
        return mask_text(data, secrets)
    return data


def _scalar(value: Any) -> bool:
    """A value a secret key's mask replaces: any non-empty scalar (containers are walked)."""
    return value not in (None, "") and not isinstance(value, Mapping | list | tuple)
