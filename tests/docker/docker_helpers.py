"""Run ids of the docker tests (a module of its own: ``conftest`` is ambiguous on sys.path,
tests/backends has one too). The session fixture in conftest checks each for leftovers."""

from __future__ import annotations

import uuid

RUN_IDS: set[str] = set()


def new_run_id(prefix: str = "dkt") -> str:
    rid = f"{prefix}-{uuid.uuid4().hex[:10]}"
    RUN_IDS.add(rid)
    return rid
