"""The reference node's WebSocket at ``/connect`` (served when the ``connect`` service is enabled).

bannou's Connect service is a binary-protocol gateway behind the ingress; this is a small but real
subset of it, enough to prove the edge path (client -> ingress -> node) end to end:

- an RFC 6455 upgrade (``Upgrade``/``Connection`` headers, ``Sec-WebSocket-Accept``), refused with
  a plain 400 when the request is not a valid WebSocket handshake;
- after the upgrade the node sends one JSON text message
  ``{"type": "welcome", "service": "connect", "appId", "node", "services"}``;
- every text and binary message is echoed back as it came (fragmented ones reassembled first);
- pings are answered with pongs, a close frame with a close frame, then the TCP connection ends.

No authentication: the reference node has no token service to check a bearer token against (its
``/auth/*`` routes only echo), so the upgrade is open, as the rest of the node is.

Framing and the handshake come from ``websockets``' sans-I/O ``ServerProtocol``, driven over the
socket the stdlib HTTP handler already holds (see CONTRIBUTING.md "Dependencies").
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

CONNECT_PATH = "/connect"
READ_SIZE = 65536
CLOSE_TIMEOUT_S = 10.0
MAX_MESSAGE = 1 << 20  # bytes; larger messages close the connection with 1009 (message too big)


class Reader(Protocol):
    def read1(self, size: int = ..., /) -> bytes: ...


def raw_request(request_line: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """The request head again as bytes (the stdlib handler parsed it already; the protocol
    object validates the handshake from the bytes a client sent)."""
    lines = [request_line, *(f"{k}: {v}" for k, v in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def welcome(app_id: str, node: str, services: Iterable[str]) -> dict[str, object]:
    return {
        "type": "welcome",
        "service": "connect",
        "appId": app_id,
        "node": node,
        "services": list(services),
    }


@dataclass
class Session:
    """What one connection did, for the node's log line."""

    status: int = 0
    echoed: int = 0
    close_code: int | None = None
    error: str = ""

    def describe(self) -> str:
        if self.status != 101:
            return f"upgrade refused ({self.error or 'invalid handshake'})"
        code = "none" if self.close_code is None else str(self.close_code)
        tail = f", {self.error}" if self.error else ""
        return f"websocket closed (code {code}), {self.echoed} message(s) echoed{tail}"


class Echo:
    """The sans-I/O protocol plus the message echo, fed bytes and emptied of bytes to write."""

    def __init__(self) -> None:
        self.protocol = ServerProtocol(max_size=MAX_MESSAGE)
        self._opcode: Opcode | None = None
        self._parts: list[bytes] = []
        self.echoed = 0

    def handshake(self, head: bytes, greeting: Mapping[str, object]) -> int:
        """Answer the upgrade request in ``head``; on success queue the welcome message."""
        self.protocol.receive_data(head)
        request = next((e for e in self.protocol.events_received() if isinstance(e, Request)), None)
        if request is None:  # not even an HTTP request the protocol accepts: it queued EOF
            return 400
        response = self.protocol.accept(request)
        self.protocol.send_response(response)
        if self.protocol.state is State.OPEN:
            self.protocol.send_text(json.dumps(greeting).encode())
        return response.status_code

    def feed(self, data: bytes) -> None:
        """Bytes from the client (``b""``: the client closed its side); echo complete messages."""
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        for event in self.protocol.events_received():
            if isinstance(event, Frame):
                self._on_frame(event)

    def _on_frame(self, frame: Frame) -> None:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            self._opcode, self._parts = frame.opcode, [frame.data]
        elif frame.opcode is Opcode.CONT and self._opcode is not None:
            self._parts.append(frame.data)
        else:
            return  # ping/pong/close: the protocol answers those itself
        if frame.fin and self._opcode is not None and self.protocol.state is State.OPEN:
            data, opcode = b"".join(self._parts), self._opcode
            self._opcode, self._parts = None, []
            if opcode is Opcode.TEXT:
                self.protocol.send_text(data)
            else:
                self.protocol.send_binary(data)
            self.echoed += 1

    def outgoing(self) -> tuple[bytes, bool]:
        """Bytes to write now, and whether the protocol asks to end our side of the TCP stream."""
        chunks = self.protocol.data_to_send()
        return b"".join(chunks), any(c == b"" for c in chunks)


def serve(
    head: bytes,
    greeting: Mapping[str, object],
    rfile: Reader,
    wfile: BinaryIO,
    shutdown_write: Callable[[], None],
) -> Session:
    """Run one WebSocket connection to its end over the handler's streams (``rfile`` may hold
    bytes the client sent right after its handshake, so reads go through it, not the socket)."""
    echo, session = Echo(), Session()
    try:
        session.status = echo.handshake(head, greeting)
        _flush(echo, wfile, shutdown_write)
        while session.status == 101 and echo.protocol.state is not State.CLOSED:
            data = rfile.read1(READ_SIZE)
            echo.feed(data)  # b"": the client ended its side, the protocol is CLOSED after it
            _flush(echo, wfile, shutdown_write)
    except OSError as exc:  # the peer went away mid-frame: the session ends, the node does not
        session.error = f"{type(exc).__name__}: {exc}"
    session.echoed = echo.echoed
    close = echo.protocol.close_rcvd
    session.close_code = None if close is None else int(close.code)
    if echo.protocol.handshake_exc is not None and session.status != 101:
        session.error = str(echo.protocol.handshake_exc)
    return session


def _flush(echo: Echo, wfile: BinaryIO, shutdown_write: Callable[[], None]) -> None:
    data, eof = echo.outgoing()
    if data:
        wfile.write(data)
        wfile.flush()
    if eof:
        shutdown_write()


def shutdown_writer(sock: socket.socket) -> Callable[[], None]:
    """Half-close ``sock`` (the server ends the TCP connection after the closing handshake) and
    wait at most ``CLOSE_TIMEOUT_S`` for the client to end its side."""

    def shut() -> None:
        try:
            sock.settimeout(CLOSE_TIMEOUT_S)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    return shut
