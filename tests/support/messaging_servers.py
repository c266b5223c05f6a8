"""Private redis-server and rabbitmq-server instances for tests and benchmarks.

Each server runs on free loopback ports (never 6379/5672/4369), keeps all its state in a temp
directory, is started with a deadline and is stopped by PID (its own process group). RabbitMQ
also gets its own epmd on a private port, started by us, so nothing system-wide is touched.

The plain ``start_*`` functions are usable from benchmarks; ``redis_server`` and
``rabbitmq_server`` are session-scoped pytest fixtures built on them; ``Consumer`` reads what is
published to exchange ``bannou``. A conftest.py that imports the fixtures offers them to its
directory (tests/messaging, tests/integration_messaging).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_bannou.messaging.broker import connect_broker, declare_exchange
from pytest_bannou.messaging.contract import EXCHANGE

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # the wrapper in /usr/sbin su's to rabbitmq
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
RABBITMQ_START_DEADLINE = 90.0
REDIS_START_DEADLINE = 15.0
STOP_GRACE = 20.0


def free_port() -> int:
    """A loopback port nobody listens on right now (bind to 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stop_group(proc: subprocess.Popen, grace: float = STOP_GRACE) -> None:
    """SIGTERM the process group led by ``proc``, then SIGKILL it after ``grace`` seconds."""
    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # stray children of an exited leader
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class RedisServer:
    port: int
    directory: Path
    proc: subprocess.Popen
    startup_seconds: float = 0.0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        _stop_group(self.proc)
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class RabbitMQServer:
    port: int
    dist_port: int
    epmd_port: int
    nodename: str
    directory: Path
    proc: subprocess.Popen
    epmd: subprocess.Popen
    startup_seconds: float = 0.0
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def close_connections(self, reason: str = "test") -> None:
        """Make the broker drop every client connection (``rabbitmqctl close_all_connections``)."""
        subprocess.run(
            [RABBITMQCTL, "-n", self.nodename, "close_all_connections", reason],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=60,
        )

    def stop(self) -> None:
        _stop_group(self.proc)
        _stop_group(self.epmd, grace=5)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_redis(deadline: float = REDIS_START_DEADLINE) -> RedisServer:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not on PATH (apt-get install redis-server)")
    directory = Path(tempfile.mkdtemp(prefix="bannou-redis-"))
    port = free_port()
    log = directory / "redis.log"
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(directory), "--logfile", str(log), "--daemonize", "no"]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    server = RedisServer(port, directory, proc)
    end = t0 + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            server.stop()
            raise RuntimeError(f"redis-server exited with {proc.returncode}:\n{_tail(log)}")
        if _port_open(port):
            server.startup_seconds = time.monotonic() - t0
            return server
        time.sleep(0.02)
    server.stop()
    raise RuntimeError(f"redis-server on 127.0.0.1:{port} not up within {deadline:.0f}s:\n{_tail(log)}")


def start_rabbitmq(deadline: float = RABBITMQ_START_DEADLINE) -> RabbitMQServer:
    if not os.path.exists(RABBITMQ_SERVER) or shutil.which("epmd") is None:
        raise RuntimeError("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
    directory = Path(tempfile.mkdtemp(prefix="bannou-rabbitmq-"))
    port, dist_port, epmd_port = free_port(), free_port(), free_port()
    nodename = f"rabbit-{uuid.uuid4().hex[:10]}@localhost"
    (directory / "enabled_plugins").write_text("[].\n")
    (directory / "rabbitmq.conf").write_text(
        "loopback_users.guest = true\n"
        f"listeners.tcp.default = 127.0.0.1:{port}\n"
        "disk_free_limit.absolute = 1MB\n"
        "log.console = false\n"
        "log.file.level = warning\n"
    )
    (directory / "rabbitmq-env.conf").write_text("")  # shadows /etc/rabbitmq/rabbitmq-env.conf
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(directory),  # the erlang cookie lands here
        "LANG": "C.UTF-8",
        "ERL_EPMD_PORT": str(epmd_port),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODENAME": nodename,
        "RABBITMQ_USE_LONGNAME": "false",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_CONF_ENV_FILE": str(directory / "rabbitmq-env.conf"),
        "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
        "RABBITMQ_LOG_BASE": str(directory / "log"),
        "RABBITMQ_PID_FILE": str(directory / "rabbit.pid"),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }
    t0 = time.monotonic()
    epmd = subprocess.Popen(
        ["epmd", "-port", str(epmd_port), "-address", "127.0.0.1"],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    while not _port_open(epmd_port):
        if epmd.poll() is not None or time.monotonic() - t0 > 10:
            _stop_group(epmd, grace=2)
            shutil.rmtree(directory, ignore_errors=True)
            raise RuntimeError(f"epmd on 127.0.0.1:{epmd_port} did not start")
        time.sleep(0.02)
    out = directory / "stdout.log"
    with out.open("wb") as fh:
        proc = subprocess.Popen(
            [RABBITMQ_SERVER],
            env=env,
            cwd=directory,
            start_new_session=True,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    server = RabbitMQServer(port, dist_port, epmd_port, nodename, directory, proc, epmd, env=env)
    end = t0 + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            text = _tail(out)
            server.stop()
            raise RuntimeError(f"rabbitmq-server exited with {proc.returncode}:\n{text}")
        if _port_open(port):
            server.startup_seconds = time.monotonic() - t0
            return server
        time.sleep(0.1)
    text = _tail(out)
    server.stop()
    raise RuntimeError(f"rabbitmq-server on 127.0.0.1:{port} not up within {deadline:.0f}s:\n{text}")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not on PATH: apt-get install redis-server")
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def rabbitmq_server() -> Iterator[RabbitMQServer]:
    if not os.path.exists(RABBITMQ_SERVER):
        pytest.skip("rabbitmq-server not installed: apt-get install rabbitmq-server")
    server = start_rabbitmq()
    try:
        yield server
    finally:
        server.stop()


class Consumer:
    """A real AMQP consumer: an exclusive queue bound to exchange ``bannou`` with some routing
    keys, pumped by a thread; received messages land in ``messages`` as (routing key, parsed body)."""

    def __init__(self, url: str, routing_keys: Iterable[str]) -> None:
        self.url = url
        self.routing_keys = list(routing_keys)
        self.messages: queue.Queue[tuple[str, dict]] = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Consumer:
        self._thread.start()
        assert self._ready.wait(30), "consumer did not bind its queue"
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def __enter__(self) -> Consumer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        conn = connect_broker(self.url, deadline=10)
        ch = conn.channel()
        declare_exchange(ch)
        q = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        for key in self.routing_keys:
            ch.queue_bind(q, EXCHANGE, routing_key=key)
        ch.basic_consume(
            q, lambda _c, m, _p, body: self.messages.put((m.routing_key, json.loads(body))), auto_ack=True
        )
        self._ready.set()
        while not self._stop.is_set():
            conn.process_data_events(time_limit=0.05)
        conn.close()

    def get(self, timeout: float = 10.0) -> tuple[str, dict]:
        return self.messages.get(timeout=timeout)

    def drain(self, settle: float = 0.3) -> list[tuple[str, dict]]:
        """Everything received so far (after a short settle for in-flight messages)."""
        time.sleep(settle)
        out = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def until(self, key: str, predicate, timeout: float = 15.0) -> dict:
        """The first message with routing key ``key`` whose body satisfies ``predicate``."""
        end = time.monotonic() + timeout
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {key} message matching the test within {timeout}s")
            try:
                k, body = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if k == key and predicate(body):
                return body
