"""A runs root of a test's own: the plugin puts its runs under ``tempfile``'s directory, so a
test that points that at its ``tmp_path`` sees only the runs it made (and leaves none)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

#: variables that would point the plugin at another runs root or state directory
RUNS_ENV = ("BANNOU_LOCAL_STATE_DIR", "XDG_RUNTIME_DIR")


def private_runs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *unset: str) -> Path:
    """Point the runs root below ``tmp_path`` and unset ``RUNS_ENV`` and ``unset``; returns the
    runs root (not created yet)."""
    base = tmp_path / "tmp"
    base.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    for name in (*RUNS_ENV, *unset):
        monkeypatch.delenv(name, raising=False)
    return base / f"pytest-bannou-{os.getuid()}"
