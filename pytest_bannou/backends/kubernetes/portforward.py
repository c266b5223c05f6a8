"""How the test process reaches a pod port on any cluster, without routes to pod IPs: a
listener on 127.0.0.1 per pod and port that relays each accepted connection over its own
port-forward websocket through the API server."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Callable
from typing import Any

_HOOK_LOCK = threading.Lock()
_hook_installed = False


def _quiet_portforward_threads() -> None:
    """The client's port-forward proxy thread raises (``SSLEOFError``, ``OSError``) when the API
    server closes a forward whose pod port is not listening yet, which every readiness probe of a
    starting node does; the relay already sees the closed socket. Keep those out of stderr
    (other threads' exceptions still reach the previous hook)."""
    global _hook_installed
    with _HOOK_LOCK:
        if _hook_installed:
            return
        previous = threading.excepthook

        def hook(args: Any) -> None:
            name = getattr(args.thread, "name", "") or ""
            if name.startswith("Kubernetes port forward proxy") and issubclass(args.exc_type, OSError):
                return
            previous(args)

        threading.excepthook = hook
        _hook_installed = True


class Forwarder:
    """A 127.0.0.1 listener; every accepted connection gets its own port-forward to the pod port."""

    def __init__(self, open_remote: Callable[[], tuple[Any, Any]], label: str) -> None:
        _quiet_portforward_threads()
        self._open_remote = open_remote
        self.label = label
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.port = self._server.getsockname()[1]
        self._closed = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name=f"k8s-forward-{label}").start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            threading.Thread(
                target=self._serve, args=(conn,), daemon=True, name=f"k8s-relay-{self.label}"
            ).start()

    def _serve(self, conn: socket.socket) -> None:
        pf = remote = None
        try:
            pf, remote = self._open_remote()
            remote.setblocking(True)
            _relay(conn, remote, self._closed)
        except Exception:  # the pod is not running / port closed: the client sees a closed connection
            pass
        finally:
            for s in (conn, remote):
                with contextlib.suppress(Exception):
                    if s is not None:
                        s.close()
            with contextlib.suppress(Exception):
                if pf is not None:
                    pf.close()
            with self._lock:
                self._conns.discard(conn)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._server.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)


def _relay(a: Any, b: Any, closed: threading.Event) -> None:
    """Copy bytes both ways until either side closes (HTTP-style request/response streams)."""
    peers = {a.fileno(): b, b.fileno(): a}
    socks = {a.fileno(): a, b.fileno(): b}
    while not closed.is_set():
        readable, _, _ = select.select(list(socks.values()), [], [], 0.5)
        for s in readable:
            data = s.recv(65536)
            if not data:
                return
            peers[s.fileno()].sendall(data)


def pod_forwarder(core: Any, stream_lock: threading.Lock, pod: str, namespace: str, port: int) -> Forwarder:
    """A ``Forwarder`` to ``port`` of ``pod``; ``core`` must be a client of its own (the stream
    helpers patch their ApiClient while they open a websocket, hence ``stream_lock``)."""
    from kubernetes.stream import portforward

    def open_remote() -> tuple[Any, Any]:
        with stream_lock:
            pf = portforward(core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port))
        return pf, pf.socket(port)

    return Forwarder(open_remote, f"{pod}:{port}")
