"""The garbage-collector policy of a session: freeze what is alive at its start, once.

Every object alive at session start (pytest, the plugins, the imported libraries: typically
100,000 objects or more) lives until the process exits anyway. Moving them out of the cyclic
collector's reach spares every full collection while 10,000 tests are collected, and the
interpreter's last one at exit, from walking them all again. ``--bannou-no-gc-freeze`` turns it
off (bench/README.md "scheduling").
"""

from __future__ import annotations

import gc

_frozen = False


def freeze_once() -> bool:
    """Freeze the objects alive now, once per process; whether this call froze them."""
    global _frozen
    if _frozen:
        return False
    gc.collect(1)  # young garbage is not frozen with the rest
    gc.freeze()
    _frozen = True
    return True
