"""Infrastructure nodes as local processes: Redis, RabbitMQ and MySQL/MariaDB from their server
binaries (MySQL through ``backends.mysql_server``, which sets a private datadir up the way the
``mysql`` image does), the ingress from the host's nginx/openresty (``ingress_command``).

Other kinds (MinIO, ...) need a Docker backend; the error says so before anything starts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ...errors import BackendUnavailable
from ...topology.ingress import is_ingress
from ...topology.model import Node
from .. import ingress, mysql_server
from .ports import free_port
from .processes import HOST

# RabbitMQ needs an epmd; a private one in the broker's process group (not a daemon that would
# outlive teardown): this launcher starts it, then becomes the broker (argv: epmd port, broker).
WITH_EPMD = (
    "import os, subprocess, sys; port = sys.argv[1]; os.environ['ERL_EPMD_PORT'] = port; "
    "subprocess.Popen(['epmd', '-port', port, '-address', '127.0.0.1']); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)
LEADER = "pytest_bannou.backends.local.leader"
INSTALL_HINT = {
    "redis": "apt-get install redis-server, or brew install redis",
    "rabbitmq": "apt-get install rabbitmq-server, or brew install rabbitmq",
    "ingress": ingress.INSTALL_HINT,
    "mysql": mysql_server.INSTALL_HINT,
    "mariadb": mysql_server.INSTALL_HINT,
}


def rabbitmq_server() -> str | None:
    # Debian's /usr/sbin/rabbitmq-server re-executes itself as user rabbitmq when run as root;
    # the script behind it runs as the caller, with our environment.
    direct = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
    if direct.exists():
        return str(direct)
    return shutil.which("rabbitmq-server")


def infra_command(
    node: Node, ports: Mapping[int, int], rundir: Path, preset: str
) -> tuple[list[str], dict[str, str]]:
    """The argv and extra environment that run infrastructure ``node`` here; a
    ``BackendUnavailable`` saying what to install or which backend to use otherwise."""
    kind = (node.infra_type or node.name).lower()
    port = next(iter(ports.values()), 0)
    if kind == "redis" and shutil.which("redis-server"):
        workdir = rundir / f"{node.name}-data"
        # no process title: it would overwrite the environment, and with it the marker that
        # proves the process ours (faults, clean-up)
        argv = ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
        argv += ["--set-proc-title", "no"]
        return [*argv, "--dir", str(workdir)], {}
    rabbit = rabbitmq_server()
    if kind == "rabbitmq" and rabbit and shutil.which("epmd"):
        base = rundir / f"{node.name}-rabbitmq"
        env = {
            "RABBITMQ_NODE_PORT": str(port),
            "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_NODENAME": f"bannou-{os.getpid()}-{port}@localhost",
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
            "RABBITMQ_DIST_PORT": str(free_port() if port else 0),
            "HOME": str(base),
        }
        return [sys.executable, "-c", WITH_EPMD, str(free_port(HOST) if port else 0), rabbit], env
    mysql = mysql_command(node, kind, port, rundir)
    if mysql is not None:
        return mysql, {}
    install = INSTALL_HINT.get(kind)
    how = f"install it ({install}) or run it" if install else "run it"
    raise BackendUnavailable(
        f"local backend: preset {preset!r}: infrastructure node {node.name!r} ({kind}) "
        "cannot run as a local process: "
        f"{how} with a Docker backend (--bannou-backend compose)"
    )


def check_runnable(node: Node, rundir: Path, preset: str) -> None:
    """Fail before starting anything when an infrastructure node cannot run here."""
    if node.kind == "infrastructure" and node.command is None:
        if is_ingress(node):
            ingress_binary(node, preset)
            return
        infra_command(node, {p: 0 for p in node.ports}, rundir, preset)


def ingress_binary(node: Node, preset: str) -> str:
    """The host's openresty or nginx, or the ``BackendUnavailable`` saying what to install."""
    binary = ingress.nginx_binary()
    if binary is None:
        raise BackendUnavailable(
            f"local backend: preset {preset!r}: infrastructure node {node.name!r} (ingress) needs "
            f"nginx or openresty on this host: install it ({ingress.INSTALL_HINT}) or run it with a "
            "Docker backend (--bannou-backend compose)"
        )
    return binary


def ingress_command(
    node: Node, ports: Mapping[int, int], rundir: Path, upstreams: Sequence[str], preset: str
) -> tuple[list[str], dict[str, str]]:
    """nginx on 127.0.0.1 at the node's (first) port, proxying to ``upstreams`` (``host:port``
    of the bannou node's replicas); its configuration, pid file, temporary files and access log
    in ``<rundir>/<node>-ingress`` (0700), nothing outside it."""
    binary = ingress_binary(node, preset)
    port = next(iter(ports.values()), 0)
    prefix = rundir / f"{node.name}-ingress"
    conf = ingress.write_config(prefix, f"{HOST}:{port}", upstreams)
    # nginx writes its process title over its environment: a leader keeps the marker (``leader``)
    return [sys.executable, "-m", LEADER, *ingress.nginx_argv(binary, prefix, conf)], {}


def ingress_config_changed(
    node: Node, ports: Mapping[int, int], rundir: Path, upstreams: Sequence[str]
) -> bool:
    """Write the ingress's configuration for ``upstreams`` again (the fronted node was scaled or
    recreated on other ports); whether it changed, so that nginx is told to reload it."""
    prefix = rundir / f"{node.name}-ingress"
    conf = prefix / "nginx.conf"
    before = conf.read_text(encoding="utf-8") if conf.exists() else ""
    port = next(iter(ports.values()), 0)
    ingress.write_config(prefix, f"{HOST}:{port}", upstreams)
    return conf.read_text(encoding="utf-8") != before


def mysql_dir(node: Node, port: int, rundir: Path) -> Path:
    """The private directory (datadir, socket, pid file) of one replica of a MySQL node."""
    return rundir / f"{node.name}-mysql-{port}"


def mysql_command(node: Node, kind: str, port: int, rundir: Path) -> list[str] | None:
    """The argv that runs a ``mysql``/``mariadb`` node from the host's server binary (bound to
    127.0.0.1 on ``port``, its files under the run directory), or None for other kinds or when
    no server binary is installed."""
    if kind not in mysql_server.KINDS or mysql_server.server_binary() is None:
        return None
    base = mysql_dir(node, port, rundir)
    return [
        sys.executable, "-m", "pytest_bannou.backends.mysql_server",
        "--datadir", str(base / "data"), "--bind", HOST, "--port", str(port),
        "--socket", str(base / "mysqld.sock"), "--pid-file", str(base / "mysqld.pid"),
        "--init-dir", str(base / "initdb.d"),
    ]  # fmt: skip


def remove_data(node: Node, ports: Mapping[int, int], rundir: Path) -> None:
    """Remove what a stopped replica of an infrastructure node kept on disk (a MySQL datadir;
    a container's would go with its container)."""
    for port in ports.values():
        base = mysql_dir(node, port, rundir)
        if base.is_dir():
            shutil.rmtree(base, ignore_errors=True)
        socket = mysql_server.short_socket(base / "mysqld.sock")
        if socket.parent != base:
            with contextlib.suppress(OSError):
                socket.unlink()
