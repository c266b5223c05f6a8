"""HTTP servers that follow the bannou node contract up to a point, then break it on purpose
(run as separate processes by the tests): ``crash-after N`` answers N requests like a node with
``auth`` enabled and then exits (a service crash); ``non-json`` answers service calls with
plain text (an unclear result)."""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

SERVICES = ["auth", "account"]


class Handler(BaseHTTPRequestHandler):
    mode = "crash-after"
    served = 0
    limit = 0

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        service = self.path.strip("/").split("/")[0]
        if self.path == "/health":
            body = {"status": "healthy", "appId": "bannou", "services": SERVICES}
            self._send(200, json.dumps(body).encode(), "application/json")
        elif service in SERVICES and Handler.mode == "non-json":
            self._send(200, b"pong", "text/plain")
        elif service in SERVICES:
            body = {"service": service, "appId": "bannou"}
            self._send(200, json.dumps(body).encode(), "application/json")
        else:
            self._send(404, json.dumps({"error": "not enabled"}).encode(), "application/json")
        Handler.served += 1
        if Handler.mode == "crash-after" and Handler.served >= Handler.limit:
            sys.stdout.flush()
            os._exit(3)  # the "service" dies: later connections are refused

    do_GET = _handle
    do_POST = _handle

    def log_message(self, format: str, *args: object) -> None:
        print(format % args, flush=True)


def main() -> None:
    Handler.mode = sys.argv[1]
    Handler.limit = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    server = HTTPServer(("127.0.0.1", 0), Handler)
    print(f"listening on :{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
