"""The reference edge-tester's WebSocket round trip (the client side of ``reference.websocket``).

One call proves the edge path: the upgrade at the connect URL, the node's JSON welcome message,
a text and a binary message echoed back unchanged, a ping answered, and a clean close (1000).
Every step shares one deadline. A refused upgrade, a wrong or missing answer and a timeout raise
``WebSocketFailure`` with the reason; a refused or reset TCP connection stays an ``OSError``
(the caller reports it as the front having stopped answering).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection, connect


class WebSocketFailure(Exception):
    """The WebSocket case failed; the message says at which step and why."""


def round_trip(url: str, deadline_s: float, say: Callable[[str], None]) -> dict:
    """Run the round trip against ``url``; returns the welcome message."""
    deadline = time.monotonic() + deadline_s

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WebSocketFailure(f"no answer within the {deadline_s:g}s deadline")
        return remaining

    try:
        ws = connect(
            url,
            open_timeout=left(),
            close_timeout=left(),
            proxy=None,  # the front is reached directly, as the other checks reach it
            ping_interval=None,
            compression=None,
        )
    except InvalidStatus as exc:
        body = bytes(exc.response.body or b"").decode("utf-8", "replace").strip()
        status = exc.response.status_code
        raise WebSocketFailure(f"upgrade refused: HTTP {status} {body[:200]}".rstrip()) from None
    except InvalidURI as exc:
        raise WebSocketFailure(f"not a WebSocket URL: {exc}") from None
    except InvalidHandshake as exc:
        raise WebSocketFailure(f"upgrade refused: {exc}") from None
    except TimeoutError:
        raise WebSocketFailure(f"the upgrade got no answer within {deadline_s:g}s") from None
    say(f"upgraded: {url} -> 101 Switching Protocols")
    with ws:
        try:
            greeting = _welcome(ws, left)
            say(f"welcome from app id {greeting.get('appId', '?')} (node {greeting.get('node', '?')})")
            _echo(ws, f"reference-tester echo {os.urandom(4).hex()}", left)
            _echo(ws, os.urandom(16) + bytes(range(8)), left)
            say("text and binary messages echoed")
            if not ws.ping(b"edge").wait(left()):
                raise WebSocketFailure(f"no pong within the {deadline_s:g}s deadline")
            say("ping answered with pong")
            ws.close()
        except TimeoutError:
            raise WebSocketFailure(f"no answer within the {deadline_s:g}s deadline") from None
        except ConnectionClosed as exc:
            raise WebSocketFailure(f"the connection closed early: {exc}") from None
    if ws.close_code != 1000:
        raise WebSocketFailure(f"the close handshake ended with code {ws.close_code}, expected 1000")
    say("closed cleanly (1000)")
    return greeting


def _welcome(ws: ClientConnection, left: Callable[[], float]) -> dict:
    first = ws.recv(timeout=left())
    try:
        greeting = json.loads(first)
    except (TypeError, ValueError):
        greeting = None
    if not isinstance(greeting, dict) or greeting.get("type") != "welcome":
        raise WebSocketFailure(f"the first message is not a JSON welcome: {first[:120]!r}")
    return greeting


def _echo(ws: ClientConnection, message: str | bytes, left: Callable[[], float]) -> None:
    ws.send(message)
    answer = ws.recv(timeout=left())
    if answer != message:
        kind = "text" if isinstance(message, str) else "binary"
        raise WebSocketFailure(f"{kind} echo differs: sent {message!r}, got {answer!r}")
