"""Output files of the CLI: a place that cannot be written is one clear message, not a traceback."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import BannouError


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
