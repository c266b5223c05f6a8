"""One real round-trip with each kind of infrastructure server bannou uses, engine-free.

``redis_ping`` (RESP ``PING`` over a socket, no library), ``rabbitmq_connect`` (an AMQP
connection with pika, the ``messaging`` extra) and ``mysql_login`` (a MySQL login with PyMySQL,
with the credentials the node's environment gives the ``mysql`` image). Each returns a short
description of what answered, or raises ``ClientError`` saying what failed; the readiness
probe of kind ``mysql`` and ``infrastructure.check`` use them.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping

from ..backends.mysql_server import client_login

MYSQL_ACCESS_DENIED = 1045


class ClientError(Exception):
    """A server did not answer as it should; the message says what happened."""


def redis_ping(host: str, port: int, timeout: float, password: str = "") -> str:
    """``PING`` answered ``+PONG`` (after ``AUTH`` when a password is given)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            if password:
                sock.sendall(_resp("AUTH", password))
                reply = _line(sock)
                if not reply.startswith(b"+OK"):
                    raise ClientError(f"AUTH answered {reply.decode(errors='replace')!r}")
            sock.sendall(_resp("PING"))
            reply = _line(sock)
    except OSError as exc:
        raise ClientError(f"redis {host}:{port}: {type(exc).__name__}: {exc}") from None
    if not reply.startswith(b"+PONG"):
        raise ClientError(f"redis {host}:{port}: PING answered {reply.decode(errors='replace')!r}")
    return "PONG"


def _resp(*words: str) -> bytes:
    parts = [f"*{len(words)}\r\n".encode()]
    for w in words:
        data = w.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(256)
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        data += chunk
    return data.strip()


def rabbitmq_connect(host: str, port: int, timeout: float, env: Mapping[str, str]) -> str:
    """An AMQP connection opened (and closed) with the broker's user (``RABBITMQ_DEFAULT_USER``/
    ``_PASS``, guest/guest by default) on ``RABBITMQ_DEFAULT_VHOST`` (``/``)."""
    try:
        import pika
        import pika.exceptions
    except ImportError:
        raise ClientError("pika is not installed: pip install 'pytest-bannou[messaging]'") from None
    user = env.get("RABBITMQ_DEFAULT_USER") or "guest"
    credentials = pika.PlainCredentials(user, env.get("RABBITMQ_DEFAULT_PASS") or "guest")
    params = pika.ConnectionParameters(
        host=host,
        port=port,
        virtual_host=env.get("RABBITMQ_DEFAULT_VHOST") or "/",
        credentials=credentials,
        connection_attempts=1,
        socket_timeout=timeout,
        stack_timeout=timeout,
        blocked_connection_timeout=timeout,
        heartbeat=0,
    )
    try:
        conn = pika.BlockingConnection(params)
    except pika.exceptions.ProbableAuthenticationError:
        raise ClientError(f"rabbitmq {host}:{port}: user {user!r} was refused (wrong password?)") from None
    except (pika.exceptions.AMQPError, OSError) as exc:
        text = str(exc) or repr(exc)
        raise ClientError(f"rabbitmq {host}:{port}: {type(exc).__name__}: {text}") from None
    conn.close()
    return f"AMQP connection as {user!r}"


def mysql_login(host: str, port: int, timeout: float, env: Mapping[str, str]) -> str:
    """A login with the user the ``mysql`` image creates from the node's environment
    (``MYSQL_USER``/``MYSQL_PASSWORD`` on ``MYSQL_DATABASE``, else root with
    ``MYSQL_ROOT_PASSWORD``); without a known password, a refused root login counts as an
    answering server. MySQL 8's default accounts (caching_sha2_password) need TLS or an RSA key
    exchange (the ``cryptography`` package) on first login: without that package the login is
    tried again over TLS, not verifying the server's self-made certificate."""
    import pymysql

    login = client_login(env)
    user, password, database = login if login is not None else ("root", "", "")
    args = {"host": host, "port": port, "user": user, "password": password, "database": database or None}
    args |= {"connect_timeout": max(timeout, 0.01), "read_timeout": max(timeout, 0.01)}
    try:
        try:
            conn = pymysql.connect(**args)
        except RuntimeError as exc:  # "'cryptography' package is required for ..."
            if "cryptography" not in str(exc):
                raise
            conn = pymysql.connect(**args, ssl=_unverified_tls())
    except pymysql.err.MySQLError as exc:
        code = exc.args[0] if exc.args else None
        if login is None and code == MYSQL_ACCESS_DENIED:
            return "server answers (no password known: MYSQL_RANDOM_ROOT_PASSWORD)"
        text = exc.args[1] if len(exc.args) > 1 else str(exc)
        raise ClientError(f"mysql {host}:{port}: login as {user!r} failed: ({code}) {text}") from None
    try:
        version = conn.get_server_info()
    finally:
        conn.close()
    return f"logged in as {user!r}" + (f" to {database!r}" if database else "") + f" (server {version})"


def _unverified_tls() -> ssl.SSLContext:
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    return tls
