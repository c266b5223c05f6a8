"""Where Portainer is and how to log in, and the secrets among them that no message may show.

Settings (``BackendOptions.extra`` key, else environment variable):

- ``url`` / ``BANNOU_PORTAINER_URL``: Portainer's base URL (``https://portainer.example:9443``)
- ``api_key`` / ``BANNOU_PORTAINER_API_KEY`` (sent as ``X-API-Key``), or ``username`` +
  ``password`` / ``BANNOU_PORTAINER_USERNAME`` + ``BANNOU_PORTAINER_PASSWORD`` (``POST /api/auth``
  gives a JWT, sent as ``Authorization: Bearer``)
- ``endpoint`` / ``BANNOU_PORTAINER_ENDPOINT``: the environment's id or name (default: the only
  Docker environment)
- ``host`` / ``BANNOU_PORTAINER_HOST``: where published ports are reached (default: the
  environment's ``PublicURL``, else the host of its ``tcp://`` URL, else of Portainer's URL)
- ``timeout`` / ``BANNOU_PORTAINER_TIMEOUT``: seconds per HTTP call (default 30)
- ``verify_tls`` / ``BANNOU_PORTAINER_VERIFY_TLS``: ``false`` for self-signed certificates
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ...errors import BackendUnavailable

ENV_PREFIX = "BANNOU_PORTAINER_"
CONFIG_HINT = (
    f"set {ENV_PREFIX}URL and either {ENV_PREFIX}API_KEY or {ENV_PREFIX}USERNAME + {ENV_PREFIX}PASSWORD "
    "(or the backend options url, api_key, username, password)"
)


@dataclass(frozen=True)
class PortainerSettings:
    """Where Portainer is and how to log in; ``repr`` never shows a secret."""

    url: str = ""
    api_key: str = field(default="", repr=False)
    username: str = ""
    password: str = field(default="", repr=False)
    endpoint: str = ""
    host: str = ""
    timeout: float = 30.0
    verify_tls: bool = True

    @classmethod
    def load(cls, extra: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None):
        """From backend options first (``url`` or ``portainer_url``), then the environment."""
        extra = extra or {}
        environ = os.environ if environ is None else environ

        def get(key: str, default: str = "") -> str:
            for k in (key, f"portainer_{key}"):
                if extra.get(k):
                    return str(extra[k])
            return environ.get(ENV_PREFIX + key.upper(), default)

        try:
            timeout = float(get("timeout", "30"))
        except ValueError:
            raise BackendUnavailable(
                f"Portainer backend: timeout {get('timeout')!r} is not a number of seconds "
                f"(option timeout / {ENV_PREFIX}TIMEOUT)"
            ) from None
        return cls(
            url=get("url").strip().rstrip("/"),
            api_key=get("api_key").strip(),
            username=get("username").strip(),
            password=get("password"),
            endpoint=get("endpoint").strip(),
            host=get("host").strip(),
            timeout=timeout,
            verify_tls=get("verify_tls", "true").strip().lower() not in ("0", "false", "no", "off"),
        )

    def problem(self) -> str:
        """What is missing to reach Portainer, or ''."""
        if not self.url:
            return f"no Portainer URL configured: {CONFIG_HINT}"
        if not urlsplit(self.url).scheme.startswith("http"):
            return f"Portainer URL {self.url!r} is not an http(s) URL ({ENV_PREFIX}URL)"
        if not self.api_key and not (self.username and self.password):
            return f"no Portainer credentials configured for {self.url}: {CONFIG_HINT}"
        return ""

    @property
    def auth_kind(self) -> str:
        return "API key" if self.api_key else f"password of user {self.username!r}"


class Secrets:
    """The secret strings of one client; ``mask`` replaces each by ``***``."""

    def __init__(self, *values: str) -> None:
        self._values: set[str] = set()
        for v in values:
            self.add(v)

    def add(self, value: str) -> None:
        if value and len(value) >= 3:
            self._values.add(value)

    def mask(self, text: str) -> str:
        for v in sorted(self._values, key=len, reverse=True):
            text = text.replace(v, "***")
        return text
