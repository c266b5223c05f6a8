"""Whether a process is alive: the one check behind every "is the owning session gone?"."""

from __future__ import annotations

import os

from .processes import is_zombie


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs. A zombie counts as gone; a process we may not signal (another
    user's) counts as alive."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return not is_zombie(pid)
