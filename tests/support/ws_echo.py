"""A tiny bannou stand-in for ingress tests, stdlib only (runs as a node's command anywhere):
``GET /health`` answers bannou-like JSON, every other HTTP request answers JSON naming the path,
method and the headers the proxy set, and ``/connect`` with ``Upgrade: websocket`` becomes a
WebSocket that echoes every text or binary message (RFC 6455, unfragmented frames).

    python tests/support/ws_echo.py        # listens on BANNOU_BIND_HOST:HTTP_WEB_HOST_PORT
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def read_frame(rfile) -> tuple[int, bytes] | None:
    head = rfile.read(2)
    if len(head) < 2:
        return None
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", rfile.read(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", rfile.read(8))[0]
    mask = rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
    data = bytes(b ^ mask[i % 4] for i, b in enumerate(rfile.read(length)))
    return opcode, data


def frame(opcode: int, data: bytes) -> bytes:
    n = len(data)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + data


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        print(format % args, flush=True)

    def _json(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _answer(self) -> None:
        if self.path == "/health":
            app_id = os.environ.get("BANNOU_APP_ID", "bannou")
            return self._json({"status": "healthy", "appId": app_id, "services": []})
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        port = self.server.server_address[1]  # which replica answered
        self._json(
            {
                "path": self.path,
                "method": self.command,
                "headers": dict(self.headers),
                "body": body,
                "port": port,
            }
        )

    def do_GET(self) -> None:
        if self.path.startswith("/connect") and self.headers.get("Upgrade", "").lower() == "websocket":
            return self._websocket()
        self._answer()

    do_POST = _answer

    def _websocket(self) -> None:
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept_key(self.headers["Sec-WebSocket-Key"]))
        self.end_headers()
        self.wfile.flush()
        while True:
            got = read_frame(self.rfile)
            if got is None or got[0] == 0x8:  # closed or a close frame
                self.wfile.write(frame(0x8, b""))
                break
            opcode, data = got
            if opcode == 0x9:  # ping
                self.wfile.write(frame(0xA, data))
            elif opcode in (0x1, 0x2):
                self.wfile.write(frame(opcode, data))
            self.wfile.flush()
        self.close_connection = True


def main() -> None:
    host = os.environ.get("BANNOU_BIND_HOST") or "0.0.0.0"
    port = int(os.environ.get("HTTP_WEB_HOST_PORT") or 80)
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    print(f"ws_echo listening on {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
