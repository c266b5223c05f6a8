"""Portainer's HTTP API (httpx): authentication, environments, stacks, and the Docker proxy
``/api/endpoints/{id}/docker/...``, which forwards Docker Engine API calls unchanged. Every
message built here passes through ``Secrets.mask``."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from ...errors import BackendUnavailable, DeployError
from ..base import LABEL_RUN_ID
from ..docker import engine as _docker
from ..docker.compose_file import LABEL_PROJECT
from .settings import ENV_PREFIX, PortainerSettings, Secrets

DOCKER_ENDPOINT_TYPES = {1, 2, 4}  # Docker (API/socket), agent, edge agent


class PortainerError(DeployError):
    """Portainer answered with an error (or not at all) for one call."""

    def __init__(self, message: str, status: int | None = None, timed_out: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.timed_out = timed_out


class PortainerClient:
    """Portainer's API: authentication, environments, stacks and the Docker proxy."""

    def __init__(self, settings: PortainerSettings) -> None:
        problem = settings.problem()
        if problem:
            raise BackendUnavailable(problem)
        self.settings = settings
        self.secrets = Secrets(settings.api_key, settings.password, urlsplit(settings.url).password or "")
        self._http = httpx.Client(
            base_url=settings.url + "/api", timeout=settings.timeout, verify=settings.verify_tls
        )
        self._auth: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"PortainerClient({self.settings.url}, {self.settings.auth_kind})"

    def close(self) -> None:
        self._http.close()

    # auth
    def login(self) -> None:
        """Check the credentials: a JWT from ``POST /auth`` for a password, a cheap authenticated
        call for an API key. ``BackendUnavailable`` when Portainer is unreachable or says no."""
        if self.settings.api_key:
            self._auth = {"X-API-Key": self.settings.api_key}
            self.call("GET", "/endpoints", params={"limit": 1}, what="check the API key")
            return
        self._auth = {}
        # the document lists apiKey as required in the payload; Portainer ignores it for a password
        body = {"username": self.settings.username, "password": self.settings.password, "apiKey": ""}
        resp = self._send("POST", "/auth", json=body, what="log in")
        if resp.status_code in (401, 422):
            raise BackendUnavailable(
                f"Portainer at {self.settings.url} rejected the {self.settings.auth_kind} "
                f"(HTTP {resp.status_code}{self.detail(resp)}); check {ENV_PREFIX}USERNAME / "
                f"{ENV_PREFIX}PASSWORD or use an API key ({ENV_PREFIX}API_KEY)"
            )
        self._raise_for(resp, "POST", "/auth", "log in")
        token = str(resp.json().get("jwt") or "")
        if not token:
            raise BackendUnavailable(
                f"Portainer at {self.settings.url} answered POST /api/auth without a JWT"
            )
        self.secrets.add(token)
        self._auth = {"Authorization": f"Bearer {token}"}

    # plumbing
    def _send(self, method: str, path: str, *, what: str, timeout: float | None = None, **kw: Any):
        try:
            return self._http.request(
                method, path, headers=self._auth, timeout=timeout or self.settings.timeout, **kw
            )
        except httpx.TimeoutException as exc:
            raise PortainerError(
                self.secrets.mask(
                    f"Portainer at {self.settings.url}: {method} /api{path} ({what}) got no answer within "
                    f"{timeout or self.settings.timeout:.0f}s ({type(exc).__name__})"
                ),
                timed_out=True,
            ) from None
        except httpx.TransportError as exc:
            raise BackendUnavailable(
                self.secrets.mask(
                    f"Portainer unreachable at {self.settings.url} ({type(exc).__name__}: {exc}) "
                    f"while trying to {what}; start it or fix {ENV_PREFIX}URL"
                )
            ) from None

    def detail(self, resp: httpx.Response) -> str:
        """Portainer's message for a failed call (``": message"``, masked), or ''."""
        try:
            body = resp.json()
        except ValueError:
            text = resp.text.strip()[:500]
            return f": {self.secrets.mask(text)}" if text else ""
        if isinstance(body, dict):
            parts = [str(body[k]) for k in ("message", "details") if body.get(k)]
            if parts:
                return ": " + self.secrets.mask(": ".join(parts))
        return ""

    def _raise_for(self, resp: httpx.Response, method: str, path: str, what: str) -> None:
        if resp.status_code < 400:
            return
        where = f"Portainer at {self.settings.url}: {method} /api{path.split('?')[0]} ({what})"
        if resp.status_code == 401:
            raise BackendUnavailable(
                f"{where} was refused: HTTP 401{self.detail(resp)}; the {self.settings.auth_kind} "
                f"is not accepted (check {ENV_PREFIX}API_KEY, or {ENV_PREFIX}USERNAME/{ENV_PREFIX}PASSWORD)"
            )
        raise PortainerError(f"{where} failed: HTTP {resp.status_code}{self.detail(resp)}", resp.status_code)

    def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        ok: Iterable[int] = (),
        timeout: float | None = None,
        **kw: Any,
    ) -> httpx.Response:
        """One API call; a JWT that expired is renewed once. Statuses in ``ok`` are returned
        instead of raised."""
        resp = self._send(method, path, what=what, timeout=timeout, **kw)
        if resp.status_code == 401 and not self.settings.api_key and self._auth:
            self.login()
            resp = self._send(method, path, what=what, timeout=timeout, **kw)
        if resp.status_code not in set(ok):
            self._raise_for(resp, method, path, what)
        return resp

    # environments
    def endpoints(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/endpoints", what="list environments").json() or [])

    def resolve_endpoint(self, wanted: str) -> dict[str, Any]:
        """The environment called ``wanted`` (id or name), or the only Docker environment."""
        found = self.endpoints()
        docker_envs = [e for e in found if e.get("Type") in DOCKER_ENDPOINT_TYPES]
        listing = ", ".join(f"{e.get('Id')} ({e.get('Name')})" for e in found) or "none"
        if not wanted:
            if len(docker_envs) == 1:
                return docker_envs[0]
            raise BackendUnavailable(
                f"Portainer at {self.settings.url} has {len(docker_envs)} Docker environments "
                f"({listing}); choose one with {ENV_PREFIX}ENDPOINT (id or name)"
            )
        for e in found:
            if str(e.get("Id")) == wanted or e.get("Name") == wanted:
                if e.get("Type") not in DOCKER_ENDPOINT_TYPES:
                    raise BackendUnavailable(
                        f"Portainer environment {wanted!r} at {self.settings.url} is not a Docker "
                        f"environment (type {e.get('Type')}); choose one of: {listing}"
                    )
                return e
        raise BackendUnavailable(
            f"Portainer at {self.settings.url} has no environment {wanted!r} ({ENV_PREFIX}ENDPOINT); "
            f"environments: {listing}"
        )

    # stacks
    def stacks(self, endpoint_id: int) -> list[dict[str, Any]]:
        params = {"filters": json.dumps({"EndpointID": endpoint_id})}
        resp = self.call("GET", "/stacks", params=params, what="list stacks", ok=(204,))
        if resp.status_code == 204 or not resp.content:
            return []
        return [s for s in resp.json() or [] if s.get("EndpointId") in (None, endpoint_id)]

    def create_stack(self, endpoint_id: int, name: str, content: str, timeout: float) -> dict[str, Any]:
        body = {"Name": name, "StackFileContent": content, "Env": []}
        return self.call(
            "POST",
            "/stacks/create/standalone/string",
            params={"endpointId": endpoint_id},
            json=body,
            timeout=timeout,
            what=f"create stack {name}",
        ).json()

    def update_stack(self, endpoint_id: int, stack: int, content: str, timeout: float, what: str) -> None:
        body = {"StackFileContent": content, "Env": [], "Prune": True, "PullImage": False}
        self.call(
            "PUT",
            f"/stacks/{stack}",
            params={"endpointId": endpoint_id},
            json=body,
            timeout=timeout,
            what=what,
        )

    def delete_stack(self, endpoint_id: int, stack: int, timeout: float) -> bool:
        """Delete a stack with its volumes; False when Portainer no longer knows it."""
        resp = self.call(
            "DELETE",
            f"/stacks/{stack}",
            params={"endpointId": endpoint_id, "removeVolumes": "true"},
            timeout=timeout,
            ok=(404,),
            what=f"delete stack {stack}",
        )
        return resp.status_code != 404

    # the Docker proxy
    def docker(self, endpoint_id: int, method: str, path: str, *, what: str, **kw: Any) -> httpx.Response:
        return self.call(method, f"/endpoints/{endpoint_id}/docker{path}", what=what, **kw)


# --- through the Docker proxy -------------------------------------------------------------------------
def demux(raw: bytes) -> bytes:
    """The payload of Docker's multiplexed stdout/stderr stream (8-byte frame headers); raw
    bytes when the stream is not multiplexed (a TTY container)."""
    out = bytearray()
    i = 0
    while i + 8 <= len(raw):
        kind, size = raw[i], struct.unpack(">I", raw[i + 4 : i + 8])[0]
        if kind not in (0, 1, 2) or raw[i + 1 : i + 4] != b"\0\0\0":
            return raw if i == 0 else bytes(out) + raw[i:]
        out += raw[i + 8 : i + 8 + size]
        i += 8 + size
    return bytes(out) + raw[i:] if i else raw


def stack_owner(client: PortainerClient, env_id: int, name: str) -> dict[str, str] | None:
    """The bannou labels of a stack's first container, or None when it has none."""
    flt = json.dumps({"label": [f"{LABEL_PROJECT}={name}"]})
    found = client.docker(
        env_id, "GET", "/containers/json", params={"all": "1", "filters": flt}, what=f"containers of {name}"
    ).json()
    for c in found:
        labels = c.get("Labels") or {}
        if LABEL_RUN_ID in labels:
            return labels
    return None


def sweep(
    client: PortainerClient, env_id: int, flt: Mapping[str, Any], run_id: str | None, report: bool = False
) -> list[str]:
    """Remove containers, networks and volumes matching ``flt`` through the Docker proxy. With
    ``report``, only those owned by ``run_id`` (or by dead sessions) and one line per removed
    resource; else every match, and one line per resource that could not be removed."""
    params = {"filters": json.dumps(flt)}
    lines: list[str] = []

    def wanted(labels: Mapping[str, str] | None) -> bool:
        return _docker.owned(labels, run_id) if report else True

    containers = client.docker(
        env_id, "GET", "/containers/json", params={**params, "all": "1"}, what="list containers"
    ).json()
    for c in containers:
        labels = c.get("Labels") or {}
        if not wanted(labels):
            continue
        name = (c.get("Names") or ["/" + c["Id"][:12]])[0].lstrip("/")
        resp = client.docker(
            env_id,
            "DELETE",
            f"/containers/{c['Id']}",
            params={"force": "1", "v": "1"},
            ok=(404, 409),
            what=f"remove container {name}",
        )
        if report and resp.status_code < 400:
            lines.append(f"container {name} (run id {labels[LABEL_RUN_ID]})")
        elif not report and resp.status_code == 409:
            lines.append(f"container {name} (being removed)")
    for net in client.docker(env_id, "GET", "/networks", params=params, what="list networks").json() or []:
        labels = net.get("Labels") or {}
        if not wanted(labels):
            continue
        resp = _retry_remove(client, env_id, f"/networks/{net['Id']}", f"remove network {net['Name']}")
        if resp is None and report:
            lines.append(f"network {net['Name']} (run id {labels[LABEL_RUN_ID]})")
        elif resp is not None and not report:
            lines.append(f"network {net['Name']} ({resp})")
    vols = client.docker(env_id, "GET", "/volumes", params=params, what="list volumes").json() or {}
    for vol in vols.get("Volumes") or []:
        labels = vol.get("Labels") or {}
        if not wanted(labels):
            continue
        resp = _retry_remove(
            client, env_id, f"/volumes/{quote(vol['Name'], safe='')}", f"remove volume {vol['Name']}"
        )
        if resp is None and report:
            lines.append(f"volume {vol['Name']} (run id {labels[LABEL_RUN_ID]})")
        elif resp is not None and not report:
            lines.append(f"volume {vol['Name']} ({resp})")
    return lines


def _retry_remove(
    client: PortainerClient, env_id: int, path: str, what: str, timeout: float = 10.0
) -> str | None:
    """DELETE until gone (a network refuses while endpoints detach); None, or the last error."""
    deadline = time.monotonic() + timeout
    problem = ""
    while True:
        resp = client.docker(env_id, "DELETE", path, ok=(404, 409, 500), what=what)
        if resp.status_code < 400 or resp.status_code == 404:
            return None
        problem = f"HTTP {resp.status_code}{client.detail(resp)}"
        if time.monotonic() >= deadline:
            return problem
        time.sleep(0.2)
