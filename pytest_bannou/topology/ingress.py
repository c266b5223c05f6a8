"""The ingress in front of bannou, as bannou's edge set-up has it: which node it proxies to and the
nginx configuration that does it. Pure text, no I/O: the local backend writes it into the run
directory, the ingress stand-in image writes it from its environment (``backends.ingress``).

bannou's OpenResty configuration (``provisioning/openresty/nginx.conf``) answers ``/health``
itself, routes ``/auth/...``, ``/connect`` (WebSocket: HTTP/1.1 with the ``Upgrade`` and
``Connection`` headers, hour-long read and send timeouts) and the rest of the API to bannou. Its
Lua routing (Redis lookups, JWT revocation, queue and asset endpoints) is not reproduced: every
route goes to one bannou node, the one hosting ``connect`` (else ``auth``, else the main node).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .model import Node, Topology

INGRESS_KIND = "ingress"
#: ``host:port`` of the bannou node the ingress proxies to (container backends; the local
#: backend reads the node name from it and uses that node's published ports)
UPSTREAM_ENV = "BANNOU_INGRESS_UPSTREAM"
#: what bannou's own configuration proxies to (``upstream bannou_default { server bannou:80; }``)
DEFAULT_UPSTREAM = "bannou:80"
#: the services whose node the ingress fronts, first found wins
FRONTED_SERVICES = ("connect", "auth")
UPSTREAM_GROUP = "bannou_upstream"
HEALTH_BODY = "OpenResty OK"  # what bannou's ingress answers on /health
#: nginx's answers to a proxied request while its upstream cannot answer (502, 504: not reached;
#: 503: not serving yet); any other status means the request reached the node
UPSTREAM_DOWN = frozenset({502, 503, 504})
#: the request an ingress's readiness proxies: the ordinary API route (not the WebSocket one,
#: whose read timeout is an hour)
PROXIED_PATH = "/"


def is_ingress(node: Node) -> bool:
    return node.kind == "infrastructure" and (node.infra_type or node.name).lower() == INGRESS_KIND


def checks_upstream(node: Node) -> bool:
    """Whether the node's readiness also asks for ``PROXIED_PATH`` through it: an ingress in front
    of a bannou node (``UPSTREAM_ENV``) with its default healthcheck (HTTP ``/health``)."""
    hc = node.healthcheck
    return (
        hc is not None
        and hc.kind == "http"
        and str(hc.target or "/health") == "/health"
        and is_ingress(node)
        and UPSTREAM_ENV in node.environment
    )


def ingress_target(topology: Topology) -> Node | None:
    """The bannou node the ingress proxies to: the one hosting ``connect``, else ``auth``, else
    the main node (None: the topology has no bannou node)."""
    for service in FRONTED_SERVICES:
        app_id = topology.mappings.get(service)
        for n in topology.bannou_nodes:
            if app_id is not None and n.app_id == app_id:
                return n
    return topology.main_node


def split_upstream(value: str) -> tuple[str, int]:
    """``host:port`` (port 80 when left out) as a pair; ``ValueError`` for a bad port."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or "]" in port:
        return value.strip(), 80
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class NginxPaths:
    """Where nginx keeps its pid file, temporary files and access log (all under its prefix)."""

    prefix: str

    def path(self, name: str) -> str:
        return f"{self.prefix.rstrip('/')}/{name}"


PROXY_HEADERS = """\
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;"""


def nginx_conf(
    listen: str,
    upstreams: Sequence[str],
    paths: NginxPaths,
    *,
    resolver: str | None = None,
    user: str | None = None,
) -> str:
    """The configuration: listen on ``listen`` (``host:port`` or a port), proxy to ``upstreams``
    (``host:port`` each). With ``resolver`` (a DNS server) the single upstream's name is looked up
    at request time, so the ingress starts before its node exists and follows it when it is
    recreated; without, the upstreams form a static group (addresses, or names resolvable at start).
    ``user``: the workers' ``user group`` (only meaningful when nginx starts as root)."""
    if not upstreams:
        raise ValueError("the ingress needs at least one upstream (host:port)")
    if resolver is not None and len(upstreams) != 1:
        raise ValueError("with a resolver the ingress takes exactly one upstream name")
    if resolver is not None:
        target = upstreams[0]
        routing = f"    resolver {resolver} valid=5s ipv6=off;\n    resolver_timeout 5s;\n"
    else:
        target = UPSTREAM_GROUP
        servers = "".join(f"        server {u};\n" for u in upstreams)
        routing = f"    upstream {UPSTREAM_GROUP} {{\n{servers}    }}\n"
    temp = "".join(
        f"    {kind}_temp_path {paths.path(kind + '_temp')};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user_line = f"user {user};\n" if user else ""
    proxy = f"            set $bannou_upstream {target};\n            proxy_pass http://$bannou_upstream;\n"
    return f"""\
# generated by pytest-bannou (pytest_bannou.topology.ingress): bannou's edge routes without Lua
{user_line}daemon off;
worker_processes 1;
pid {paths.path("nginx.pid")};
error_log stderr notice;

events {{
    worker_connections 1024;
}}

http {{
    default_type application/octet-stream;
    access_log {paths.path("access.log")};
{temp}    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 65;
{routing}
    server {{
        listen {listen} default_server;
        server_name _;

        location = /health {{
            access_log off;
            default_type text/plain;
            return 200 "{HEALTH_BODY}\\n";
        }}

        location ^~ /auth/ {{
{proxy}{PROXY_HEADERS}
        }}

        location ~ ^/connect(/.*)?$ {{
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
{proxy}{PROXY_HEADERS}
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
            proxy_connect_timeout 60s;
        }}

        location / {{
{proxy}{PROXY_HEADERS}
        }}
    }}
}}
"""
