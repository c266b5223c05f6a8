"""Free TCP ports on the loopback interface.

The kernel picks a free port (bind to port 0); a process-wide set keeps this process from
handing the same port out twice before the node that receives it has bound it.
"""

from __future__ import annotations

import socket
import threading

_lock = threading.Lock()
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now and that this process has not handed out before."""
    with _lock:
        for _ in range(64):
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise OSError(f"no free TCP port found on {host} after 64 attempts")


def release(port: int) -> None:
    """Let ``free_port`` hand ``port`` out again (after its owner stopped for good)."""
    with _lock:
        _handed_out.discard(port)
