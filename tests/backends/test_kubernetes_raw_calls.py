"""``call_raw``: a delete whose answer is not decoded. Its connection goes back to the client's
pool, and a connection returned with the answer's body still on its way hands those bytes to the
next request as its status line (``BadStatusLine``; a POST is not retried). Seen in CI when a
pod's JSON arrived after the headers. The race cannot be provoked on demand, so the order of
calls on the answer is what is checked."""

from __future__ import annotations

from typing import Any

from pytest_bannou.backends.kubernetes.connection import REQUEST_TIMEOUT, call_raw


class RecordedAnswer:
    def __init__(self, fail_read: bool = False) -> None:
        self.calls: list[str] = []
        self.fail_read = fail_read

    def read(self) -> bytes:
        self.calls.append("read")
        if self.fail_read:
            raise TimeoutError("read timed out")
        return b'{"kind": "Pod"}'

    def release_conn(self) -> None:
        self.calls.append("release_conn")

    def close(self) -> None:
        self.calls.append("close")


def test_the_answer_is_read_to_the_end_before_its_connection_is_reused() -> None:
    answer = RecordedAnswer()
    seen: dict[str, Any] = {}

    def delete(name: str, namespace: str, **kwargs: Any) -> RecordedAnswer:
        seen.update(kwargs, name=name, namespace=namespace)
        return answer

    call_raw(delete, "pod-1", "ns", grace_period_seconds=0)
    assert answer.calls == ["read", "release_conn"]
    assert seen == {
        "name": "pod-1",
        "namespace": "ns",
        "grace_period_seconds": 0,
        "_preload_content": False,
        "_request_timeout": REQUEST_TIMEOUT,
    }


def test_an_answer_that_cannot_be_read_closes_its_connection_instead() -> None:
    answer = RecordedAnswer(fail_read=True)
    call_raw(lambda *a, **k: answer, "pod-1", "ns")
    assert answer.calls == ["read", "close"]
