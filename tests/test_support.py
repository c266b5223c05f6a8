"""_support: atomic files, the one name sanitizer, the one CI-job table."""

from __future__ import annotations

import os
import stat

import pytest

from pytest_bannou._support import ci, names
from pytest_bannou._support.files import atomic_write
from pytest_bannou.backends.docker import engine
from pytest_bannou.environment.runs import new_run_id


def test_atomic_write_replaces_the_file_private_by_default(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("old")
    os.chmod(path, 0o644)
    atomic_write(path, '{"new": 1}')
    assert path.read_text() == '{"new": 1}'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    atomic_write(path, b"\x00bytes", mode=0o640)
    assert path.read_bytes() == b"\x00bytes"
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 in (0o040, 0o000)  # the umask may take more
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # no temporary file left


def test_atomic_write_leaves_the_old_content_when_the_rename_fails(tmp_path, monkeypatch):
    path = tmp_path / "live.json"
    path.write_text("old")

    def broken(*_args: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk on fire"):
        atomic_write(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["live.json"]


def test_atomic_write_never_follows_a_planted_temporary_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    for i in range(3):  # whatever the temporary name, an existing entry is never opened
        atomic_write(tmp_path / "f", f"v{i}")
    assert victim.read_text() == "keep"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bannou-RUN-preset-gw0", "bannou-run-preset-gw0"),
        ("--weird__name--", "weird__name"),
        ("a  b//c", "a-b-c"),
        ("a--b", "a-b"),
        ("", "bannou"),
        ("///", "bannou"),
        ("Ünïcode", "n-code"),
    ],
)
def test_resource_name_is_what_the_docker_backends_always_made(text, expected):
    assert names.resource_name(text) == expected
    assert engine.sanitize(text) == expected


def test_names_for_kubernetes_and_files():
    assert names.dns_label("Bannou_RUN.x--y") == "bannou-run-x-y"
    assert names.label_value("-my value.") == "my-value"
    assert names.label_value("a" * 80) == "a" * 63
    assert names.file_name("../../etc/passwd") == "etc_passwd"
    assert names.file_name("...", fallback="tester") == "tester"
    assert names.with_hash("short", "short", 63) == "short"
    long = names.with_hash("x" * 80, "x" * 80, 63)
    assert len(long) == 63 and long != names.with_hash("x" * 81, "x" * 81, 63)


def test_bannou_ci_job_variables_name_both_the_run_id_and_the_report(monkeypatch):
    # the two tables disagreed: BANNOU_CI_JOB_ID (documented) named only the run id,
    # BANNOU_CI_JOB only the report's job
    assert new_run_id({"BANNOU_CI_JOB": "Edge Job"}).endswith("-edge-job")
    from pytest_bannou.plugin import report

    monkeypatch.setenv("BANNOU_CI_JOB_ID", "edge")
    assert report._ci_job() == "edge"


def test_one_ci_table_names_the_job_for_the_run_id_and_the_report():
    assert ci.ci_job_name({"BANNOU_CI_JOB_ID": "edge"}) == "edge"
    assert ci.ci_job_name({"BANNOU_CI_JOB": "edge"}) == "edge"
    gh = {"GITHUB_RUN_ID": "42", "GITHUB_JOB": "test", "BANNOU_CI_MATRIX": "k8s"}
    assert ci.ci_job_id(gh) == "42-test-k8s" and ci.ci_job_name(gh) == "test"
    assert ci.ci_job_id({"CI_JOB_ID": "7", "CI_JOB_NAME": "unit"}) == "7"
    assert ci.ci_job_name({"CI_JOB_ID": "7", "CI_JOB_NAME": "unit"}) == "unit"
    assert ci.ci_job_id({}) is None and ci.ci_job_name({}) is None
