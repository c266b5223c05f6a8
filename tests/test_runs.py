"""Run ids and run directories: a run id names a directory under the runs root, never a path the
user chose, and the runs root and what the plugin writes there belong to this user alone.

Every test gets its own runs root (``tempfile.tempdir`` points into ``tmp_path``): the machine's
shared one is neither read nor changed.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from pathlib import Path

import pytest

from pytest_bannou import environment
from pytest_bannou.cli import main as cli_main
from pytest_bannou.errors import BannouError
from tests.support.runs_root import private_runs_root

OTHER_UID = 65534  # nobody


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The runs root of this test (not created yet)."""
    return private_runs_root(tmp_path, monkeypatch)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A directory outside the runs root that looks like a run directory."""
    d = tmp_path / "victim"
    d.mkdir()
    info = {"run_id": "bannou-deadbeef", "backend": "local", "kept": True, "owner_pid": 999999999}
    (d / "environment.json").write_text(json.dumps(info))
    (d / "precious.txt").write_text("keep me")
    return d


def untouched(victim: Path) -> bool:
    return (victim / "precious.txt").is_file() and (victim / "environment.json").is_file()


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# --- point 1: a run id is a name, not a path ---------------------------------------------------


def test_generated_run_ids_match_the_pattern():
    envs = [
        {},
        {"GITHUB_RUN_ID": "123", "GITHUB_JOB": "build_x"},
        {"BANNOU_CI_JOB_ID": "Jöb ² / ../" + "x" * 80},
        {"CI_JOB_ID": "-" * 10},
    ]
    for env in envs:
        rid = environment.new_run_id(env)
        assert environment.RUN_ID_PATTERN.fullmatch(rid), rid
        assert environment.check_run_id(rid) == rid


@pytest.mark.parametrize(
    "bad", ["", ".", "..", "../../victim", "/etc", "bannou-deadbeef/..", "bannou-DEADBEEF", "bannou-1\x00"]
)
def test_check_run_id_refuses_what_new_run_id_cannot_make(bad):
    with pytest.raises(environment.RunIdError, match="is not a run id"):
        environment.check_run_id(bad)


def _attacks(victim: Path) -> list[str]:
    return [str(victim), "../../victim", f"{victim}/../victim"]


@pytest.mark.parametrize(
    "argv",
    [
        ["clean", "--run-id", "{}", "--backend", "local"],
        ["status", "--run-id", "{}"],
        ["logs", "{}", "main"],
        ["update", "{}", "scale:main=2"],
        ["rollback", "{}"],
    ],
    ids=["clean", "status", "logs", "update", "rollback"],
)
def test_cli_refuses_a_path_as_run_id(root, victim, argv, capsys):
    for attack in _attacks(victim):
        with pytest.raises(SystemExit) as exc:
            cli_main([a.replace("{}", attack) for a in argv])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert f"{attack!r} is not a run id" in err, err
        assert "Traceback" not in err
        assert untouched(victim)


def test_clean_refuses_a_run_directory_that_is_a_symlink_out_of_the_runs_root(root, victim, capsys):
    root.mkdir(mode=0o700)
    (root / "bannou-deadbeef").symlink_to(victim)
    assert cli_main(["clean", "--run-id", "bannou-deadbeef", "--backend", "local"]) == 1
    err = capsys.readouterr().err
    assert "bannou-deadbeef" in err and "outside" in err and "Traceback" not in err
    assert untouched(victim)
    # without --run-id: the symlink is not a run directory, its target's record is left alone
    assert cli_main(["clean", "--backend", "local"]) == 0
    assert untouched(victim)
    assert cli_main(["status"]) == 0
    assert "bannou-deadbeef" not in capsys.readouterr().out


def test_run_directory_stays_under_the_runs_root(root, victim):
    root.mkdir(mode=0o700)
    assert environment.run_directory("bannou-0000abcd") == root / "bannou-0000abcd"
    (root / "bannou-deadbeef").symlink_to(victim)
    (root / "bannou-00000001").symlink_to(root / "bannou-0000abcd")
    for bad in ("bannou-deadbeef", "bannou-00000001", "../../victim", str(victim), "", ".", "a/b"):
        with pytest.raises(environment.RunIdError):
            environment.run_directory(bad)
    assert environment.run_directories() == []


# --- point 2: the runs root and the run directories are private --------------------------------


def test_runs_root_is_created_private(root):
    old = os.umask(0o022)
    try:
        assert environment.runs_root() == root
    finally:
        os.umask(old)
    assert mode(root) == 0o700


def test_an_existing_runs_root_of_this_user_is_made_private(root):
    root.mkdir()
    root.chmod(0o755)
    environment.runs_root()
    assert mode(root) == 0o700


@pytest.mark.parametrize("bits", [0o770, 0o707, 0o1777])
def test_a_group_or_world_writable_runs_root_is_refused(root, bits, capsys):
    root.mkdir()
    root.chmod(bits)
    with pytest.raises(BannouError, match=re.escape(f"chmod 700 {root}")) as exc:
        environment.runs_root()
    assert "TMPDIR" in str(exc.value)
    assert mode(root) == bits  # not changed behind the user's back
    assert cli_main(["status"]) == 1
    err = capsys.readouterr().err
    assert f"chmod 700 {root}" in err and "Traceback" not in err


def test_a_runs_root_owned_by_another_user_is_refused(root, victim, capsys):
    root.mkdir(mode=0o700)
    (root / "bannou-deadbeef").mkdir()
    (root / "bannou-deadbeef" / "environment.json").write_text((victim / "environment.json").read_text())
    os.chown(root, OTHER_UID, OTHER_UID)
    with pytest.raises(BannouError, match=f"owned by uid {OTHER_UID}") as exc:
        environment.runs_root()
    assert "TMPDIR" in str(exc.value)
    for argv in (["status"], ["clean", "--backend", "local"], ["clean", "--run-id", "bannou-deadbeef"]):
        assert cli_main(argv) == 1
        err = capsys.readouterr().err
        assert f"owned by uid {OTHER_UID}" in err and "Traceback" not in err
    assert (root / "bannou-deadbeef" / "environment.json").is_file()


def test_a_symlinked_runs_root_of_another_user_is_refused(root, tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    root.symlink_to(target)
    os.lchown(root, OTHER_UID, OTHER_UID)
    with pytest.raises(BannouError, match=f"owned by uid {OTHER_UID}"):
        environment.runs_root()


def test_run_info_is_private(root):
    old = os.umask(0o022)
    try:
        workdir = environment.run_directory("bannou-0000abcd")
        workdir.mkdir(parents=True)
        workdir.chmod(0o755)
        (workdir / environment.RUN_INFO).write_text("{}")
        (workdir / environment.RUN_INFO).chmod(0o644)
        environment.write_run_info(workdir, {"run_id": "bannou-0000abcd", "secret": "x"})
    finally:
        os.umask(old)
    assert mode(workdir) == 0o700
    assert mode(workdir / environment.RUN_INFO) == 0o600
    assert environment.read_run_info(workdir) == {"run_id": "bannou-0000abcd", "secret": "x"}
    assert sorted(p.name for p in workdir.iterdir()) == [environment.RUN_INFO]


def test_ensure_run_directory_is_private_and_checks_the_runs_root(root):
    workdir = environment.run_directory("bannou-0000abcd")
    environment.ensure_run_directory(workdir)
    assert (mode(root), mode(workdir)) == (0o700, 0o700)
    root.chmod(0o777)
    with pytest.raises(BannouError, match="chmod 700"):
        environment.ensure_run_directory(environment.run_directory("bannou-0000abce"))
    assert not (root / "bannou-0000abce").exists()


# --- run directories are pruned like pytest's basetemp -------------------------------------------


def _old_run(root: Path, run_id: str, age: float, **files: str) -> Path:
    d = root / run_id
    d.mkdir(mode=0o700)
    (d / "local").mkdir()
    (d / "local" / "main.log").write_text("log")
    for name, text in files.items():
        (d / name.replace("_", ".")).write_text(text)
    then = time.time() - age
    for p in [d / "local" / "main.log", d / "local", *(d / n.replace("_", ".") for n in files), d]:
        os.utime(p, (then, then))
    return d


def test_prune_keeps_the_newest_finished_runs_and_never_kept_recorded_or_live_ones(root):
    environment.runs_root()
    finished = [_old_run(root, f"bannou-0000000{i}", age=3600 * (i + 1)) for i in range(5)]
    kept = _old_run(root, "bannou-1000000a", 99999, environment_json=json.dumps({"kept": True}))
    live = _old_run(root, "bannou-1000000b", 99999, **{f"in-use_{os.getpid()}": ""})
    dead = _old_run(root, "bannou-1000000c", 99999, **{"in-use_999999999": ""})
    current = _old_run(root, "bannou-1000000d", 99999)
    recent = _old_run(root, "bannou-1000000e", 5)

    removed = environment.runs.prune_run_directories(keep=3, current=current.name, grace=600)

    assert sorted(removed) == sorted([finished[3], finished[4], dead])
    for d in [*finished[:3], kept, live, current, recent]:
        assert d.is_dir(), d
    assert (kept / "environment.json").is_file()


def test_mark_in_use_names_this_process(root):
    environment.runs_root()
    d = root / "bannou-2000000a"
    marker = environment.runs.mark_in_use(d)
    assert marker.name == f"in-use.{os.getpid()}"
    assert environment.runs.in_use(d)
    marker.unlink()
    assert not environment.runs.in_use(d)


def test_status_asks_only_http_nodes_for_health(root, capsys):
    # a session's own run has no configuration history: its record says which nodes answer no
    # HTTP /health (Redis, RabbitMQ, MySQL); those are listed, not probed as HTTP servers
    import socket

    with socket.socket() as silent:  # accepts, never answers: an HTTP probe would say "unreachable"
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        workdir = environment.run_directory("bannou-0123abcd")
        info = {"run_id": "bannou-0123abcd", "backend": "local", "environment": "x", "kept": False}
        environment.write_run_info(workdir, {**info, "urls": {"redis": url}, "no_http": ["redis"]})
        assert cli_main(["status", "--run-id", "bannou-0123abcd"]) == 0
    out = capsys.readouterr().out
    assert f"  redis: {url}\n" in out and "unreachable" not in out
