"""Shared fixtures of the backend tests: an isolated state index and a backend factory that
tears down everything it created."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated_state_index(tmp_path, monkeypatch):
    """Each test gets its own local-backend state index, so ``clean()`` only sees its sessions."""
    index = tmp_path / "state-index"
    monkeypatch.setenv("BANNOU_LOCAL_STATE_DIR", str(index))
    return index
