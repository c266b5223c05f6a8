"""A MySQL/MariaDB server from the host's binary, set up the way the ``mysql`` image's entrypoint does.

``python -m pytest_bannou.backends.mysql_server --datadir D --bind H --port P --socket S`` is what
the local backend runs for a ``mysql`` (or ``mariadb``) infrastructure node and what the stand-in
``mysql:8.0`` image of ``backends.docker.images`` runs in its container. On the first start (an
empty datadir) it initialises the datadir (``mariadb-install-db``, or ``mysqld
--initialize-insecure`` for Oracle MySQL), starts a private server without networking, applies the
image's variables (``MYSQL_ROOT_PASSWORD`` / ``MYSQL_ALLOW_EMPTY_PASSWORD`` /
``MYSQL_RANDOM_ROOT_PASSWORD``, ``MYSQL_ROOT_HOST``, ``MYSQL_DATABASE``, ``MYSQL_USER`` +
``MYSQL_PASSWORD``, their ``_FILE`` twins, the ``MARIADB_*`` names of the mariadb image, then the
``*.sql`` files of the init directory), stops it, and execs the server bound to ``--bind:--port``.
A preset written for the real image therefore behaves the same on every backend.

Engine-free: no Docker, no pytest; PyMySQL (over the private socket) applies the settings, so
no password ever reaches a command line or a file.
"""

from __future__ import annotations

import argparse
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

KINDS = ("mysql", "mariadb")  # infrastructure kinds this module runs
DEFAULT_PORT = 3306
INIT_DIR = "/docker-entrypoint-initdb.d"  # where the image reads *.sql files at first start
SOCKET_MAX = 100  # a Unix socket path longer than about 107 bytes cannot be bound
START_TIMEOUT = 120.0  # the private first-start server (a loaded 2-core machine is slow)
INSTALL_HINT = "apt-get install mariadb-server (or mysql-server), or brew install mariadb"
MISSING_PASSWORD = (
    "error: database is uninitialized and password option is not specified\n"
    "  You need to specify one of the following as an environment variable:\n"
    "  - MYSQL_ROOT_PASSWORD\n  - MYSQL_ALLOW_EMPTY_PASSWORD\n  - MYSQL_RANDOM_ROOT_PASSWORD\n"
    "  (in the preset: topology.infrastructure.mysql.environment)"
)


class SetupError(Exception):
    """The server cannot be set up as asked (printed, exit code 1, as the image does)."""


def server_binary() -> str | None:
    """The host's server program (MariaDB's or MySQL's), or None."""
    for name in ("mariadbd", "mysqld"):
        found = shutil.which(name) or next(
            (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/local/sbin") / name) if p.exists()), None
        )
        if found:
            return found
    return None


def _value(env: Mapping[str, str], name: str) -> str:
    """``MARIADB_{name}``, else ``MYSQL_{name}``, else their ``_FILE`` twins' contents."""
    for prefix in ("MARIADB_", "MYSQL_"):
        if env.get(prefix + name):
            return str(env[prefix + name])
    for prefix in ("MARIADB_", "MYSQL_"):
        path = env.get(f"{prefix}{name}_FILE")
        if path:
            try:
                return Path(path).read_text().strip()
            except OSError as exc:
                raise SetupError(f"error: {prefix}{name}_FILE={path}: cannot read it: {exc}") from None
    return ""


def _flag(env: Mapping[str, str], name: str) -> bool:
    return _value(env, name).lower() not in ("", "0", "no", "false", "off")


@dataclass(frozen=True)
class Settings:
    """What the image's variables ask for."""

    root_password: str = ""
    allow_empty: bool = False
    random_root: bool = False
    root_host: str = "%"
    database: str = ""
    user: str = ""
    password: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return cls(
            root_password=_value(env, "ROOT_PASSWORD"),
            allow_empty=_flag(env, "ALLOW_EMPTY_PASSWORD") or _flag(env, "ALLOW_EMPTY_ROOT_PASSWORD"),
            random_root=_flag(env, "RANDOM_ROOT_PASSWORD"),
            root_host=_value(env, "ROOT_HOST") or "%",
            database=_value(env, "DATABASE"),
            user=_value(env, "USER"),
            password=_value(env, "PASSWORD"),
        )

    def check(self) -> None:
        if not (self.root_password or self.allow_empty or self.random_root):
            raise SetupError(MISSING_PASSWORD)
        if self.user.lower() == "root":
            raise SetupError(
                'error: MYSQL_USER="root", MYSQL_USER and MYSQL_PASSWORD are for the one user other than root'
            )
        if bool(self.user) != bool(self.password):
            raise SetupError("error: MYSQL_USER and MYSQL_PASSWORD go together: set both (or neither)")


def client_login(env: Mapping[str, str]) -> tuple[str, str, str] | None:
    """(user, password, database) a client logs in with, given the node's environment: the
    application user when there is one, else root; None when no password is known (a random one)."""
    s = Settings.from_env(env)
    if s.user and s.password:
        return s.user, s.password, s.database
    if s.root_password or s.allow_empty:
        return "root", s.root_password, s.database
    return None


def _statements(s: Settings, root_password: str) -> list[tuple[str, tuple[str, ...]]]:
    """The SQL the image's entrypoint runs at first start, with its parameters."""
    out: list[tuple[str, tuple[str, ...]]] = [
        ("ALTER USER 'root'@'localhost' IDENTIFIED BY %s", (root_password,))
    ]
    if s.root_host and s.root_host != "localhost":
        out.append(("CREATE USER IF NOT EXISTS 'root'@%s IDENTIFIED BY %s", (s.root_host, root_password)))
        out.append(("GRANT ALL ON *.* TO 'root'@%s WITH GRANT OPTION", (s.root_host,)))
    if s.database:
        out.append((f"CREATE DATABASE IF NOT EXISTS {_ident(s.database)}", ()))
    if s.user:
        out.append(("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (s.user, s.password)))
        if s.database:
            out.append((f"GRANT ALL ON {_ident(s.database)}.* TO %s@'%%'", (s.user,)))
    out.append(("FLUSH PRIVILEGES", ()))
    return out


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _os_user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def _is_mariadb(server: str) -> bool:
    out = subprocess.run([server, "--version"], capture_output=True, text=True, check=False)
    return "mariadb" in (out.stdout + out.stderr).lower()


def short_socket(path: Path) -> Path:
    """``path``, or a short stand-in in the temp directory when it is too long to bind."""
    if len(str(path)) <= SOCKET_MAX:
        return path
    import hashlib
    import tempfile

    digest = hashlib.sha1(str(path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"bannou-mysql-{digest}.sock"


def server_args(server: str, datadir: Path, socket: Path, pid_file: Path, mariadb: bool) -> list[str]:
    """What every start of the server gets: its own files only, no option file of the host."""
    args = [server, "--no-defaults", f"--datadir={datadir}", f"--socket={socket}", f"--pid-file={pid_file}"]
    args += [f"--user={_os_user()}", "--skip-name-resolve"]
    if mariadb:  # small redo log: a test server's datadir stays about 20 MB instead of 110 MB
        args += ["--innodb-log-file-size=8M", "--skip-log-bin"]
    return args


def initialise(server: str, datadir: Path, mariadb: bool) -> None:
    datadir.mkdir(parents=True, exist_ok=True)
    if mariadb:
        install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        if install is None:
            raise SetupError(f"error: mariadb-install-db not found; {INSTALL_HINT}")
        argv = [install, "--no-defaults", f"--datadir={datadir}", f"--user={_os_user()}"]
        argv += ["--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"]
        argv += ["--innodb-log-file-size=8M"]
        basedir = Path(server).resolve().parent.parent  # /usr for /usr/sbin/mariadbd
        argv.append(f"--basedir={basedir}")
    else:
        argv = [
            server,
            "--no-defaults",
            "--initialize-insecure",
            f"--datadir={datadir}",
            f"--user={_os_user()}",
        ]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SetupError(
            f"error: initialising {datadir} failed ({' '.join(argv[:1])}):\n{out.stdout}{out.stderr}"
        )


def apply_settings(
    server: str, datadir: Path, socket: Path, s: Settings, init_dir: Path | None, mariadb: bool
) -> None:
    """Start a private server (no TCP), run the image's first-start SQL over its socket, stop it."""
    import pymysql

    pid_file = datadir / "first-start.pid"
    argv = [*server_args(server, datadir, socket, pid_file, mariadb), "--skip-networking"]
    proc = subprocess.Popen(argv, stdout=sys.stderr, stderr=sys.stderr)
    try:
        conn = _connect_socket(pymysql, socket, proc)
        try:
            root_password = s.root_password
            if s.random_root and not root_password:
                root_password = secrets.token_urlsafe(24)
                print(f"GENERATED ROOT PASSWORD: {root_password}", flush=True)
            with conn.cursor() as cur:
                _drop_default_accounts(cur)
                for sql, params in _statements(s, root_password):
                    cur.execute(sql, params or None)
                for path in sorted(init_dir.glob("*")) if init_dir and init_dir.is_dir() else ():
                    _run_init_file(cur, path, s.database)
            conn.commit()
        finally:
            conn.close()
    finally:
        _stop(proc)


def _drop_default_accounts(cur) -> None:  # type: ignore[no-untyped-def]
    """The accounts an initialised datadir has besides root@localhost (anonymous ones, root
    without a password on 127.0.0.1, ::1 and the host name), as the image's entrypoint drops them."""
    cur.execute(
        "SELECT User, Host FROM mysql.user WHERE User = '' OR (User = 'root' AND Host <> 'localhost')"
    )
    for user, host in cur.fetchall():
        cur.execute("DROP USER %s@%s", (user, host))


def _connect_socket(pymysql, socket: Path, proc: subprocess.Popen):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise SetupError(f"error: the first-start server exited with code {proc.returncode} (log above)")
        try:
            return pymysql.connect(unix_socket=str(socket), user="root", password="", connect_timeout=5)
        except pymysql.err.MySQLError as exc:
            if time.monotonic() > deadline:
                raise SetupError(
                    f"error: the first-start server did not answer within {START_TIMEOUT:g}s: {exc}"
                ) from None
            time.sleep(0.1)


def _run_init_file(cur, path: Path, database: str) -> None:  # type: ignore[no-untyped-def]
    """A ``*.sql`` file of the init directory, statement by statement (as the image pipes it to
    the client); other files are named and skipped (no shell here)."""
    if path.suffix != ".sql":
        print(f"ignoring {path} (only *.sql files run here)", flush=True)
        return
    print(f"running {path}", flush=True)
    if database:
        cur.execute(f"USE {_ident(database)}")
    for statement in path.read_text().split(";\n"):
        if statement.strip():
            cur.execute(statement)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pytest_bannou.backends.mysql_server", description=__doc__)
    p.add_argument("--datadir", type=Path, required=True)
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--socket", type=Path, required=True)
    p.add_argument("--pid-file", type=Path, default=None)
    p.add_argument("--init-dir", type=Path, default=Path(INIT_DIR))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    server = server_binary()
    if server is None:
        print(f"error: no mariadbd or mysqld on this machine; {INSTALL_HINT}", file=sys.stderr)
        return 1
    mariadb = _is_mariadb(server)
    socket = short_socket(args.socket)
    socket.parent.mkdir(parents=True, exist_ok=True)
    pid_file = args.pid_file or args.datadir.parent / "mysqld.pid"
    try:
        if not (args.datadir / "mysql").is_dir():
            settings = Settings.from_env(os.environ)
            settings.check()
            print(f"initialising {args.datadir} with {server}", flush=True)
            initialise(server, args.datadir, mariadb)
            apply_settings(server, args.datadir, socket, settings, args.init_dir, mariadb)
            print("first-start settings applied; starting the server", flush=True)
    except SetupError as exc:
        print(str(exc), file=sys.stderr, flush=True)
        return 1
    argv_server = server_args(server, args.datadir, socket, pid_file, mariadb)
    argv_server += [f"--bind-address={args.bind}", f"--port={args.port}"]
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.execv(server, argv_server)
    return 0  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
