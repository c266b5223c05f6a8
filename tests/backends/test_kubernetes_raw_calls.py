"""``call_raw``: a delete whose answer is not decoded. Its connection goes back to the client's
pool; returned before the answer's body has arrived, the late body is read by the next request
on that connection as its status line (``BadStatusLine``, and a POST is not retried). Seen in CI
when a deleted pod's JSON came after the headers. Reproduced here with the real client against a
stand-in API server on 127.0.0.1 that sends a delete's body late."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pytest_bannou.backends.kubernetes.connection import call_raw

LATE_BODY_S = 0.3


class LateBodyApiServer(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1: a DELETE's headers now and its body ``LATE_BODY_S`` later; a POST
    answered 201 with the object it was sent."""

    protocol_version = "HTTP/1.1"

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, status: int, body: bytes, late: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.flush()
        if late:
            time.sleep(LATE_BODY_S)
        self.wfile.write(body)
        self.wfile.flush()

    def do_DELETE(self) -> None:
        self._body()
        pod = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p", "namespace": "ns"}}
        self._answer(200, json.dumps(pod).encode(), late=True)

    def do_POST(self) -> None:
        self._answer(201, self._body())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), LateBodyApiServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_the_request_after_a_raw_delete_is_not_handed_its_late_answer(api_server: str) -> None:
    from kubernetes import client

    cfg = client.Configuration()
    cfg.host = api_server
    cfg.connection_pool_maxsize = 1  # the POST reuses the delete's connection
    api = client.ApiClient(cfg)
    try:
        core = client.CoreV1Api(api)
        call_raw(core.delete_namespaced_pod, "p", "ns", grace_period_seconds=0)
        made = core.create_namespaced_config_map(
            "ns",
            client.V1ConfigMap(metadata=client.V1ObjectMeta(name="after"), data={"k": "v"}),
            _request_timeout=10,
        )
        assert made.metadata.name == "after" and made.data == {"k": "v"}
    finally:
        api.close()


class UnreadableAnswer:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def read(self) -> bytes:
        self.calls.append("read")
        raise TimeoutError("read timed out")

    def release_conn(self) -> None:
        self.calls.append("release_conn")

    def close(self) -> None:
        self.calls.append("close")


def test_an_answer_that_cannot_be_read_closes_its_connection_instead() -> None:
    answer = UnreadableAnswer()
    call_raw(lambda *a, **k: answer, "pod-1", "ns")
    assert answer.calls == ["read", "close"]
