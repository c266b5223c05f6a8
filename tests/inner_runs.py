"""Shared by the suites that run pytest inside pytest (pytester)."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest

from pytest_bannou.environment.runs import runs_root


def remove_run_directories(results: Iterable[pytest.RunResult]) -> None:
    """Failed inner runs keep their node logs (and say where): remove those these runs made."""
    for result in results:
        for line in result.outlines:
            if line.startswith("node logs of this run: "):
                path = Path(line.split(": ", 1)[1])
                if path.parent == runs_root():
                    shutil.rmtree(path, ignore_errors=True)
