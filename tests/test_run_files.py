"""Files in a run directory that hold the environment (live state, configuration history,
messaging state, shared-environment files, owner marker) are 0600 in a 0700 directory, written
whole or not at all (issue 12 point 6).

Every test gets its own runs root (``tempfile.tempdir`` points into ``tmp_path``) and writes
with a permissive umask, so a mode that only the umask made private shows up.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_bannou._support.files import atomic_write
from pytest_bannou.environment import sharing, sweep
from pytest_bannou.environment.live import History, load_history, save_history
from pytest_bannou.environment.runs import run_directory
from pytest_bannou.messaging.session import LIVE_STATE, EnvMessaging
from pytest_bannou.topology.model import Node, Topology

RUN_ID = "bannou-0000f11e"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    base = tmp_path / "tmp"
    base.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def workdir() -> Path:
    """A run directory that exists with a mode the umask allowed (as an older version left it)."""
    d = run_directory(RUN_ID)
    d.mkdir(parents=True)
    d.chmod(0o755)
    return d


def _topology() -> Topology:
    return Topology(preset="p", nodes=(Node(name="main", app_id="bannou", environment={"K": "v"}),))


def test_atomic_write_is_private_whole_and_leaves_no_temporary_file(tmp_path: Path):
    (tmp_path / "d").mkdir()
    target = tmp_path / "d" / "state.json"
    target.write_text("old")
    target.chmod(0o644)
    atomic_write(target, "new")
    assert (target.read_text(), mode(target)) == ("new", 0o600)
    atomic_write(target, b"\x00bytes", mode=0o640)
    assert (target.read_bytes(), mode(target)) == (b"\x00bytes", 0o640)
    assert sorted(p.name for p in target.parent.iterdir()) == ["state.json"]


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path: Path):
    (tmp_path / "d").mkdir()
    target = tmp_path / "d" / "state.json"
    target.write_text("old")
    with pytest.raises(TypeError):
        atomic_write(target, 42)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["state.json"]


def test_live_history_is_private(workdir: Path):
    (workdir / LIVE_STATE).write_text("{}")
    (workdir / LIVE_STATE).chmod(0o644)
    save_history(workdir, History([(1, _topology())]))
    assert (mode(workdir), mode(workdir / LIVE_STATE)) == (0o700, 0o600)
    assert [v for v, _ in load_history(workdir).versions] == [1]
    assert sorted(p.name for p in workdir.iterdir()) == [LIVE_STATE]


def test_messaging_state_is_private(workdir: Path):
    EnvMessaging(workdir=workdir).save(None)  # type: ignore[arg-type]
    assert mode(workdir / LIVE_STATE) == 0o600
    assert "messaging" in json.loads((workdir / LIVE_STATE).read_text())
    assert sorted(p.name for p in workdir.iterdir()) == [LIVE_STATE]


def test_owner_marker_is_private(workdir: Path):
    path = sweep.write_owner(RUN_ID)
    assert (mode(workdir), mode(path), path.read_text()) == (0o700, 0o600, str(os.getpid()))


def test_shared_environment_files_are_private():
    directory = sharing.ensure_shared_dir(RUN_ID)
    path = directory / "env.json"
    sharing.write_json(path, {"key": "env", "endpoints": {}})
    assert (mode(run_directory(RUN_ID)), mode(directory), mode(path)) == (0o700, 0o700, 0o600)
    assert sharing.read_json(path) == {"key": "env", "endpoints": {}}
