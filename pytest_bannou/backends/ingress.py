"""The ingress from the host's nginx (or openresty): finding the binary, writing its
configuration (``topology.ingress``) into a private prefix, and the entrypoint of the ingress
stand-in image (``python -m pytest_bannou.backends.ingress``).

Engine-free: the local backend calls ``write_config``/``nginx_argv`` with its run directory; the
stand-in image (``backends.docker.images``) runs ``main``, which reads the container's
environment (``BANNOU_INGRESS_UPSTREAM``, default ``bannou:80`` as in bannou's own configuration;
``BANNOU_INGRESS_PORT``, default 80), writes the configuration under ``/tmp`` and becomes nginx.
In a container the upstream's name is resolved at request time through the container's DNS
server (Docker's, or the cluster's with the first search domain appended), so the ingress does not
depend on the start order and follows a recreated node. nginx's resolver does not read
``/etc/hosts``: an upstream named there (a Kubernetes pod's ``hostAliases``, the Service's cluster
IP, which the backend keeps when it recreates the Service; the only way the name resolves on a
cluster without DNS) is written as that address, in a static upstream group, and nginx starts
once that address accepts connections (at most ``BANNOU_INGRESS_UPSTREAM_WAIT`` seconds, default
20): a Service routes only after its pod is ready and the node's proxy caught up, so the
ingress's own ``/health`` then means that the API behind it is reachable too.

The real image (``openresty/openresty``, public: no plugin labels) has none of this: the backends
hand it ``public_launch``, the configuration in ``BANNOU_INGRESS_NGINX_CONF`` (generated from
the same environment when the file is written) and a ``/bin/sh`` entrypoint that writes it under
``BANNOU_INGRESS_PREFIX`` (default ``/tmp/bannou-ingress``) and execs openresty (else nginx).
"""

from __future__ import annotations

import grp
import os
import shutil
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import DeployError
from ..topology.ingress import (
    DEFAULT_UPSTREAM,
    UPSTREAM_ENV,
    NginxPaths,
    is_ingress,
    nginx_conf,
    split_upstream,
)
from ..topology.model import Node

PORT_ENV = "BANNOU_INGRESS_PORT"
PREFIX_ENV = "BANNOU_INGRESS_PREFIX"
UPSTREAM_WAIT_ENV = "BANNOU_INGRESS_UPSTREAM_WAIT"
DEFAULT_UPSTREAM_WAIT_S = 20.0
CONTAINER_PREFIX = "/tmp/bannou-ingress"
CONF_ENV = "BANNOU_INGRESS_NGINX_CONF"  # the real image's configuration (``public_launch``)
#: Docker's embedded DNS server, in every container on a user-defined network (compose, swarm)
DOCKER_RESOLVER = "127.0.0.11"
BINARIES = ("openresty", "nginx")  # openresty first, as bannou runs it
INSTALL_HINT = "apt-get install nginx (or openresty), or brew install nginx"


def nginx_binary() -> str | None:
    """openresty when installed, else nginx (PATH, then the usual sbin directories)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/openresty/bin", "/usr/sbin", "/sbin"])
    for name in BINARIES:
        found = shutil.which(name, path=path)
        if found:
            return found
    return None


def worker_user() -> str | None:
    """``user group`` for the workers when running as root (nginx's default ``nobody`` lacks
    access to a 0700 prefix); None otherwise (the directive only matters to root)."""
    if os.geteuid() != 0:
        return None
    return f"root {grp.getgrgid(0).gr_name}"


def write_config(prefix: Path, listen: str, upstreams: Sequence[str], *, resolver: str | None = None) -> Path:
    """Write ``nginx.conf`` into ``prefix`` (0700, the file 0600) and return its path."""
    prefix.mkdir(parents=True, exist_ok=True)
    os.chmod(prefix, 0o700)
    conf = prefix / "nginx.conf"
    text = nginx_conf(listen, upstreams, NginxPaths(str(prefix)), resolver=resolver, user=worker_user())
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(conf, 0o600)
    return conf


def nginx_argv(binary: str, prefix: Path, conf: Path) -> list[str]:
    """nginx in the foreground on ``conf``, its prefix ``prefix``, early errors on stderr."""
    return [binary, "-p", str(prefix), "-c", str(conf), "-e", "stderr"]


def dns_resolver(resolv_conf: str) -> tuple[str | None, list[str]]:
    """The first ``nameserver`` and the ``search`` domains of a resolv.conf text."""
    server: str | None = None
    search: list[str] = []
    for line in resolv_conf.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver" and server is None:
            server = f"[{parts[1]}]" if ":" in parts[1] else parts[1]
        elif parts and parts[0] in ("search", "domain"):
            search = parts[1:]
    return server, search


def hosts_address(hosts: str, name: str) -> str | None:
    """The address ``name`` has in an ``/etc/hosts`` text (the first line naming it), else None."""
    for line in hosts.splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 2 and name.lower() in (p.lower() for p in parts[1:]):
            return parts[0]
    return None


def lazy_upstream(upstream: str, resolv_conf: str, hosts: str = "") -> tuple[str, str | None]:
    """The upstream to write and the resolver to use: nginx's resolver applies no search domains,
    so a bare name gets the first one (Kubernetes: ``NAMESPACE.svc.cluster.local``); Docker's
    embedded DNS (127.0.0.11) answers bare service names itself. A name in ``hosts`` (the
    ``/etc/hosts`` text) is written as its address, without a resolver."""
    server, search = dns_resolver(resolv_conf)
    host, port = split_upstream(upstream)
    pinned = hosts_address(hosts, host)
    if pinned is not None:
        return (f"[{pinned}]:{port}" if ":" in pinned else f"{pinned}:{port}"), None
    if server is None or _is_address(host):
        return f"{host}:{port}", None
    if "." not in host and search and server != "127.0.0.11":
        host = f"{host}.{search[0]}"
    return f"{host}:{port}", server


def pinned_upstream(env: Mapping[str, str], hosts: str) -> tuple[str, int] | None:
    """(address, port) of the upstream when ``/etc/hosts`` names it (``lazy_upstream``), else None."""
    try:
        host, port = split_upstream(env.get(UPSTREAM_ENV) or DEFAULT_UPSTREAM)
    except ValueError:
        return None
    address = hosts_address(hosts, host)
    return (address, port) if address is not None else None


def wait_reachable(address: str, port: int, seconds: float) -> bool:
    """Until ``address:port`` accepts a TCP connection (True) or ``seconds`` passed (False)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection((address, port), timeout=1.0):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
        time.sleep(0.2)


def _is_address(host: str) -> bool:
    return ":" in host or host.replace(".", "").isdigit()


def container_config(env: Mapping[str, str], resolv_conf: str, hosts: str = "") -> tuple[Path, list[str]]:
    """Write the container's configuration from its environment (``resolv_conf``, ``hosts``: the
    container's ``/etc/resolv.conf`` and ``/etc/hosts``); its nginx argv."""
    binary = nginx_binary()
    if binary is None:
        raise SystemExit(f"bannou ingress: no nginx or openresty found; {INSTALL_HINT}")
    upstream = env.get(UPSTREAM_ENV) or DEFAULT_UPSTREAM
    try:
        split_upstream(upstream)
        port = int(env.get(PORT_ENV) or 80)
    except ValueError:
        raise SystemExit(
            f"bannou ingress: {UPSTREAM_ENV}={upstream!r} or {PORT_ENV}={env.get(PORT_ENV)!r} is not "
            "HOST:PORT / a port number"
        ) from None
    target, resolver = lazy_upstream(upstream, resolv_conf, hosts)
    prefix = Path(env.get(PREFIX_ENV) or CONTAINER_PREFIX)
    conf = write_config(prefix, str(port), [target], resolver=resolver)
    return conf, nginx_argv(binary, prefix, conf)


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return ""


#: the real image's entrypoint: POSIX sh only (the alpine image has no Python). No ``$(``
#: and no ``$$``: Kubernetes expands both in ``command``; Compose files escape every ``$``.
PUBLIC_SCRIPT = (
    f'p="${{{PREFIX_ENV}:-{CONTAINER_PREFIX}}}"; mkdir -p "$p/logs" || exit 1; '
    f'printf \'%s\\n\' "${CONF_ENV}" > "$p/nginx.conf" || exit 1; '
    "for b in openresty /usr/local/openresty/bin/openresty nginx /usr/sbin/nginx; do "
    'if command -v "$b" >/dev/null 2>&1; then exec "$b" -p "$p" -c "$p/nginx.conf" -e stderr; fi; done; '
    "echo 'bannou ingress: neither openresty nor nginx in the image' >&2; exit 127"
)
PUBLIC_ENTRYPOINT = ("/bin/sh", "-c", PUBLIC_SCRIPT)


def public_conf(env: Mapping[str, str], resolver: str | None, where: str = "the ingress") -> str:
    """The configuration the real image runs, from the node's environment: listen on
    ``BANNOU_INGRESS_PORT`` (80), proxy to ``BANNOU_INGRESS_UPSTREAM`` (``bannou:80``); with
    ``resolver`` its name is looked up at request time, else once at start (a Kubernetes Service
    name: its cluster IP does not change). Paths are relative to the prefix ``-p`` names."""
    upstream = env.get(UPSTREAM_ENV) or DEFAULT_UPSTREAM
    try:
        host, port = split_upstream(upstream)
        listen = int(env.get(PORT_ENV) or 80)
    except ValueError:
        raise DeployError(
            f"{where}: {UPSTREAM_ENV}={upstream!r} or {PORT_ENV}={env.get(PORT_ENV)!r} is not "
            "HOST:PORT / a port number; fix the preset's ingress environment"
        ) from None
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    resolver = None if _is_address(host) else resolver
    return nginx_conf(f"0.0.0.0:{listen}", [target], NginxPaths("."), resolver=resolver)


def public_launch(node: Node, resolver: str | None) -> tuple[tuple[str, ...], dict[str, str]] | None:
    """(entrypoint, environment to add) that make the real ingress image serve bannou's routes;
    None for any other node, or an ingress whose preset gives its own command."""
    if not is_ingress(node) or node.command is not None:
        return None
    conf = public_conf(node.environment, resolver, f"node {node.name!r}")
    return PUBLIC_ENTRYPOINT, {CONF_ENV: conf}


def main() -> None:  # pragma: no cover - exec
    hosts = _read("/etc/hosts")
    conf, argv = container_config(os.environ, _read("/etc/resolv.conf"), hosts)
    pinned = pinned_upstream(os.environ, hosts)
    if pinned is not None:
        wait = float(os.environ.get(UPSTREAM_WAIT_ENV) or DEFAULT_UPSTREAM_WAIT_S)
        if not wait_reachable(*pinned, wait):
            print(f"bannou ingress: {pinned[0]}:{pinned[1]} not reachable after {wait:g}s; starting anyway")
    print(f"bannou ingress: {conf} -> {os.environ.get(UPSTREAM_ENV) or DEFAULT_UPSTREAM}", flush=True)
    sys.stdout.flush()
    os.execv(argv[0], argv)


if __name__ == "__main__":  # pragma: no cover
    main()
