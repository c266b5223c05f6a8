"""The reliability suite's ``project``: a tmp project run as real subprocesses (see
tests/support/reliability.py), cleaned up by PID and run id afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.reliability import Project


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    p = Project(tmp_path / "project")
    yield p
    p.cleanup()
