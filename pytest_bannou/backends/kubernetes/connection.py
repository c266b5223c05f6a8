"""Reaching the cluster: the client configuration, whether the API server answers and accepts the
credentials, and how its errors read in messages.

Kubeconfig: ``extra["kubeconfig"]``, else ``KUBECONFIG``, else the in-cluster service account,
else ``~/.kube/config`` (context: ``extra["kubernetes_context"]``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ...errors import BackendUnavailable
from ..base import Availability, BackendOptions
from .options import option

REQUEST_TIMEOUT = 15.0
CLUSTER_HINT = (
    "start one with `../shared/k8s/cluster up` (in this repository's CI) or point KUBECONFIG at a cluster"
)


@dataclass(frozen=True)
class Connection:
    """A client configuration and where it came from (for messages)."""

    configuration: Any
    source: str

    @property
    def host(self) -> str:
        return str(self.configuration.host)


class _OwnSession:
    """The ``subprocess`` module as the client's exec credential provider sees it, except that
    ``Popen`` starts the plugin (``users[].user.exec`` in a kubeconfig) in its own session: a
    Ctrl-C in the terminal then reaches only pytest, which tears down in order, instead of
    killing a half-done token request. Stdin, when the client passes the terminal, stays
    readable (it is not the plugin's controlling terminal)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args: Any, **kwargs: Any) -> subprocess.Popen:
        return subprocess.Popen(*args, start_new_session=kwargs.pop("start_new_session", True), **kwargs)


def _plugins_in_own_session() -> None:
    """Install ``_OwnSession`` for the client's exec provider (once; it runs again on token
    refresh, from any thread)."""
    from kubernetes.config import exec_provider

    if getattr(exec_provider, "subprocess", None) is subprocess:
        exec_provider.subprocess = _OwnSession()


def connect(options: BackendOptions | None = None) -> Connection:
    """Client configuration from ``extra["kubeconfig"]`` / ``KUBECONFIG`` / in-cluster /
    ``~/.kube/config``; ``BackendUnavailable`` saying what was tried."""
    try:
        from kubernetes import client, config
    except ImportError as exc:
        raise BackendUnavailable(
            f"the kubernetes client is not installed ({exc}); pip install 'pytest-bannou[kubernetes]'"
        ) from None
    _plugins_in_own_session()
    context = option(options, "kubernetes_context") or None
    candidates: list[tuple[str, str]] = []
    if option(options, "kubeconfig"):
        candidates.append(("option kubeconfig", option(options, "kubeconfig")))
    elif os.environ.get("KUBECONFIG"):
        candidates.append(("KUBECONFIG", os.environ["KUBECONFIG"].split(os.pathsep)[0]))
    cfg = client.Configuration()
    for source, path in candidates:
        if not os.path.isfile(path):
            raise BackendUnavailable(f"kubeconfig {path} (from {source}) does not exist; {CLUSTER_HINT}")
        try:
            config.load_kube_config(config_file=path, context=context, client_configuration=cfg)
        except Exception as exc:
            raise BackendUnavailable(f"kubeconfig {path} (from {source}) cannot be used: {exc}") from None
        return _tune(Connection(cfg, f"{source} {path}"))
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config(client_configuration=cfg)
        except Exception as exc:
            raise BackendUnavailable(f"in-cluster Kubernetes configuration cannot be used: {exc}") from None
        return _tune(Connection(cfg, "in-cluster service account"))
    home = Path(os.path.expanduser("~/.kube/config"))
    if home.is_file():
        try:
            config.load_kube_config(config_file=str(home), context=context, client_configuration=cfg)
        except Exception as exc:
            raise BackendUnavailable(f"kubeconfig {home} cannot be used: {exc}") from None
        return _tune(Connection(cfg, f"default kubeconfig {home}"))
    raise BackendUnavailable(
        "no Kubernetes configuration: KUBECONFIG is not set, not running in a cluster, no ~/.kube/config, "
        f"no kubeconfig option; {CLUSTER_HINT}"
    )


def _tune(conn: Connection) -> Connection:
    conn.configuration.retries = 1  # an unreachable API server fails in seconds, not minutes
    return conn


def api_error(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    if status:
        reason = getattr(exc, "reason", "") or ""
        body = getattr(exc, "body", "") or ""
        message = ""
        with contextlib.suppress(Exception):
            message = yaml.safe_load(body).get("message", "")
        return f"HTTP {status} {reason}{': ' + message if message else ''}".strip()
    text = str(exc).strip().splitlines()
    return text[-1][:300] if text else type(exc).__name__


def check_cluster(conn: Connection, timeout: float = 5.0) -> str:
    """The server version, or ``BackendUnavailable`` naming the address and what went wrong."""
    from kubernetes import client

    api_client = client.ApiClient(conn.configuration)
    try:
        info = client.VersionApi(api_client).get_code(_request_timeout=timeout)
        # /version is readable anonymously: check that the credentials are accepted too
        client.CoreV1Api(api_client).list_namespace(limit=1, _request_timeout=timeout)
    except Exception as exc:
        status = getattr(exc, "status", None)
        if status in (401, 403):
            raise BackendUnavailable(
                f"the Kubernetes API server at {conn.host} rejected the credentials from {conn.source} "
                f"({api_error(exc)}); use a kubeconfig with a valid token or certificate that may list "
                "namespaces"
            ) from None
        raise BackendUnavailable(
            f"the Kubernetes API server at {conn.host} (from {conn.source}) is unreachable: "
            f"{api_error(exc)}; "
            f"{CLUSTER_HINT}"
        ) from None
    finally:
        api_client.close()
    return str(info.git_version)


def availability(options: BackendOptions | None = None) -> Availability:
    try:
        conn = connect(options)
        version = check_cluster(conn)
    except BackendUnavailable as exc:
        return Availability(False, exc.message)
    return Availability(True, f"Kubernetes {version} at {conn.host} ({conn.source})")


def call_raw(call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Call a delete endpoint without decoding its answer: the client decodes some of them into
    the wrong model (a Status into a Service) and fails after the deletion succeeded."""
    resp = call(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs)
    # read the body before the connection goes back to the pool: a released connection with
    # unread bytes hands them to the next request on it as its status line (BadStatusLine);
    # one that could not be read to the end is closed, never reused
    try:
        resp.read()
    except Exception:
        with contextlib.suppress(Exception):
            resp.close()
        return
    with contextlib.suppress(Exception):
        resp.release_conn()
