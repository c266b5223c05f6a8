"""A preset's content hash: same topology, same hash, whatever the comments or key order."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def content_hash(data: Any) -> str:
    """sha256 over canonical JSON (sorted keys) of the normalized, interpolated, merged preset.

    Keys are the model's field names, so camelCase and snake_case spellings hash the same;
    ``extends`` is left out because the parent's content is already merged in."""
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "extends"}
    raw = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]
