"""The mesh endpoints file: how nodes learn the other nodes' URLs when ports are only known
after they start.

bannou's FullServiceMappingsEvent carries service -> appId only, never URLs, and the local
backend picks every node's port when it starts the node, so no node can be told its peers' URLs
in its environment before start. Instead the environment sets ``BANNOU_MESH_ENDPOINTS_FILE`` to
a file in the run directory and rewrites it (atomically) after every deploy, transition and
change, before publishing the mapping event; the reference node rereads it when it changed.
Its content has the ``BANNOU_MESH_ENDPOINTS`` format: ``appId=http://host:port,...``.
On container backends nodes reach each other by name, so ``BANNOU_MESH_ENDPOINTS`` is set instead.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..errors import BannouError
from ..messaging.contract import MESH_ENDPOINTS_FILE_ENV
from ..messaging.contract import format_mesh_endpoints as format_endpoints
from ..messaging.contract import write_mesh_endpoints as write_endpoints
from .messaging import parse_mesh_endpoints

__all__ = ["MESH_ENDPOINTS_FILE_ENV", "EndpointsFile", "format_endpoints", "write_endpoints"]


class EndpointsFile:
    """Reads the file again only when its modification time or size changed."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._endpoints: dict[str, str] = {}

    def read(self) -> dict[str, str]:
        """The current endpoints; the last good ones while the file is missing or malformed."""
        with contextlib.suppress(OSError):
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                with contextlib.suppress(BannouError):  # keep the last good endpoints
                    self._endpoints = parse_mesh_endpoints(self.path.read_text().strip())
                self._stamp = stamp
        return dict(self._endpoints)
