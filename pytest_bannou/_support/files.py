"""Files replaced in one step: a reader sees the old content or the new, never half of it.

Every file the plugin rewrites while others may read it (run info, live state, state files,
reports, the mesh endpoints file, xdist groups) goes through ``atomic_write``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def atomic_write(path: str | os.PathLike[str], data: str | bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory.

    The temporary file is created new (``O_EXCL``, never following a planted link) with ``mode``
    (the umask applies, as with ``open``) before any byte is written, flushed to disk, then
    renamed over ``path``; on any error it is removed and ``path`` is left as it was. ``str`` is
    written as UTF-8. The parent directory must exist.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
