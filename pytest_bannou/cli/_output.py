"""What the CLI prints and writes: where a run's nodes answer (each replica, infrastructure with its
own scheme, and what to do when those addresses die with the command), and output files, where a
place that cannot be written is one clear message, not a traceback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from ..backends.base import Backend, Endpoint
from ..errors import BannouError
from ..topology.contract import INFRA_SCHEMES
from ..topology.model import Node, Topology


def address(node: Node | None, endpoint: Endpoint) -> str:
    """``http://h:p`` for a node that answers HTTP, ``redis://h:p`` (amqp://, mysql://) or
    ``h:p`` for the infrastructure that does not."""
    if node is None or node.http_health:
        return endpoint.url()
    scheme = INFRA_SCHEMES.get((node.infra_type or node.name).lower())
    return endpoint.url(scheme) if scheme else endpoint.netloc


def recorded_address(node: Node | None, url: str) -> str:
    """A URL of a run record (always ``http://``) as ``address`` writes it."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a bad port raises only when read
    except ValueError:  # a record edited by hand (``http://[::1``): shown as it is
        return url
    if node is None or node.http_health or not parts.hostname or not parts.port:
        return url
    return address(node, Endpoint(parts.hostname, parts.port))


def node_addresses(backend: Backend, topology: Topology) -> Iterator[tuple[str, Node, str]]:
    """(label, node, address) of every replica of every node with a port: ``NODE`` for replica 0,
    ``NODE[i]`` for the others (after ``scale``); a replica the backend cannot give is left out."""
    for node in topology.nodes:
        if not node.ports:
            continue
        for replica in range(max(1, node.replicas)):
            label = node.name if replica == 0 else f"{node.name}[{replica}]"
            try:
                ep = backend.endpoint(node.name, replica=replica)
            except (BannouError, KeyError, IndexError):
                continue  # a replica the backend does not have (any more)
            except Exception as exc:  # an engine's own error (an API or a port-forward): the
                # change is done; printing where it answers must not end it in a traceback
                yield label, node, f"(unavailable: {type(exc).__name__}: {exc})"
                continue
            yield label, node, address(node, ep)


def print_nodes(backend: Backend, topology: Topology, indent: str = "  ", hints: str = "") -> None:
    """Where every replica answers, then (at ``hints`` indentation) the backend's hints when those
    addresses die with this command (kubernetes' port-forwards)."""
    for label, _node, text in node_addresses(backend, topology):
        print(f"{indent}{label}: {text}")
    for line in backend.kept_hints():
        print(f"{hints}{line}")


def unwritable(
    what: str, path: str | os.PathLike[str], exc: OSError, fix: str, directory: Path | None = None
) -> BannouError:
    """The error for ``exc`` raised while writing ``what`` at ``path``: names the part of the path
    that is in the way (a file where ``directory``, by default ``path``, needs a directory) or
    the system's reason."""
    reason = exc.strerror or str(exc)
    blocker = _file_in_the_way(Path(path) if directory is None else directory)
    if blocker is not None:
        reason = f"{blocker} is a file, not a directory"
    elif exc.filename and os.fspath(exc.filename) != os.fspath(path):
        reason += f" ({os.fspath(exc.filename)})"
    return BannouError(f"cannot write {what} {os.fspath(path)}: {reason}; {fix}")


def _file_in_the_way(path: Path) -> Path | None:
    for parent in [path, *path.parents]:
        if parent.exists():
            return parent if not parent.is_dir() else None
    return None
