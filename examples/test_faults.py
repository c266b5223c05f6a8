"""Fault injection in the demo: kill and pause a node of a split preset and watch it over HTTP
(the local backend: SIGKILL and SIGSTOP on the node's process group). Every fault is undone
before the next test, so the second test finds both nodes answering again."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.preset("split-auth")


def answers(url: str, timeout: float = 5.0) -> bool:
    try:
        return httpx.get(url + "/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_paused_node_stops_answering_until_resumed(bannou_env):
    auth = bannou_env.url("auth")
    with bannou_env.paused("auth"):
        assert not answers(auth, timeout=1.0)  # frozen: the request times out
    assert answers(auth)  # resumed on exit, and ready again


def test_a_killed_node_shows_in_status(bannou_env):
    node = bannou_env.node_for("auth")
    bannou_env.kill("auth")
    assert [s.state for s in bannou_env.status() if s.node == node] == ["exited"]
    # no undo here: the plugin restarts the node before the next test of this preset


def test_the_next_test_starts_without_faults(bannou_env):
    assert {s.state for s in bannou_env.status()} == {"running"}
    assert answers(bannou_env.url("auth"))
