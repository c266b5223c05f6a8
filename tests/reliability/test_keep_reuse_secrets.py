"""--bannou-keep / --bannou-keep-on-failure print how to reach and remove; --bannou-reuse attaches
to a kept environment of the same preset hash and redeploys a changed one; secret environment
values are masked in plans, ``presets show``, report sections and report files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import yaml

from tests.support.reliability import Project, alive

ONE = """
import pytest

@pytest.mark.preset("red")
def test_one(bannou_http):
    assert bannou_http.get("/health").status_code == 200
"""

FAILS = """
import pytest

@pytest.mark.preset("red")
def test_fails(bannou_env):
    assert False, "deliberate"
"""


def _kept_run_id(out: str) -> str:
    m = re.search(r"remove it with: bannou-env clean --run-id (\S+) --backend local", out)
    assert m, out
    return m.group(1)


def _clean(project, run_id: str) -> str:
    cli = subprocess.run(
        [sys.executable, "-m", "pytest_bannou.cli", "clean", "--run-id", run_id, "--backend", "local"],
        env=project.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    return cli.stdout


def test_keep_prints_how_to_reach_and_remove(project):
    project.write("test_one.py", ONE)
    code, out = project.run("-q", "-p", "no:cacheprovider", "--bannou-keep")
    assert code == 0, out
    run_id = _kept_run_id(out)
    pids = project.deploys()[0]["pids"]
    try:
        assert re.search(r"main: http://127\.0\.0\.1:\d+", out), out
        assert all(alive(p) for p in pids)
    finally:
        removed = _clean(project, run_id)
    assert not any(alive(p) for p in pids), removed


def test_keep_on_failure_keeps_only_failed_runs(project):
    project.write("test_one.py", ONE)
    code, out = project.run("-q", "-p", "no:cacheprovider", "--bannou-keep-on-failure")
    assert code == 0 and "bannou environment kept" not in out, out
    assert not any(alive(p) for p in project.deploys()[0]["pids"])
    project.reset_deploys()
    project.write("test_one.py", FAILS)
    code, out = project.run("-q", "-p", "no:cacheprovider", BANNOU_KEEP_ON_FAILURE="1")
    assert code == 1, out
    run_id = _kept_run_id(out)
    pids = project.deploys()[0]["pids"]
    try:
        assert all(alive(p) for p in pids)
    finally:
        _clean(project, run_id)
    assert not any(alive(p) for p in pids)


def _keep_red(project) -> tuple[Path, str, list[int]]:
    """Run ``ONE`` with --bannou-keep on a ``red`` preset with a hash of its own (environments
    other tests keep must not match): (its preset file, the kept run id, the kept pids)."""
    project.write("test_one.py", ONE)
    preset = project.presets / "red.yaml"
    preset.write_text(preset.read_text().replace("FLAVOUR: red", f"FLAVOUR: red-{uuid.uuid4().hex}"))
    code, out = project.run("-q", "-p", "no:cacheprovider", "--bannou-keep")
    assert code == 0, out
    run_id = _kept_run_id(out)
    kept_pids = project.deploys()[0]["pids"]
    project.reset_deploys()
    return preset, run_id, kept_pids


def test_reuse_attaches_to_a_matching_kept_environment_and_redeploys_a_changed_one(project):
    preset, run_id, kept_pids = _keep_red(project)
    try:
        code, out = project.run("-q", "-p", "no:cacheprovider", "--bannou-reuse")
        assert code == 0, out
        assert f"reusing kept environment red (run id {run_id}" in out, out
        assert "deploying red" not in out and project.deploys() == []
        assert all(alive(p) for p in kept_pids)  # still kept after the reusing run
        # the preset changes: the kept environment no longer matches
        preset.write_text(preset.read_text().replace("FLAVOUR: red-", "FLAVOUR: changed-"))
        code, out = project.run("-q", "-p", "no:cacheprovider", "--bannou-reuse")
        assert code == 0, out
        assert "not reused: preset hash" in out and "deploying red" in out, out
        assert not any(alive(p) for p in kept_pids)
        assert [d["key"] for d in project.deploys()] == ["red"]
    finally:
        _clean(project, run_id)
    assert project.leftovers() == {}


def _bannou_env(project, *args: str) -> str:
    cli = subprocess.run(
        [sys.executable, "-m", "pytest_bannou.cli", *args],
        env=project.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    return cli.stdout


def test_reuse_refuses_a_kept_environment_changed_in_place_and_takes_it_back_once_restored(project):
    # `bannou-env update` changes a kept run in place; `--bannou-reuse` must not hand a test that
    # run as if it were the preset's (it did: FOO=bar stayed, config_version said 1)
    _preset, run_id, kept_pids = _keep_red(project)
    try:
        _bannou_env(project, "update", run_id, "update-env:main:FOO=bar")
        _bannou_env(project, "rollback", run_id)  # version 3: the preset's configuration again
        code, out = project.run("-q", "-p", "no:cacheprovider", "--bannou-reuse")
        assert code == 0 and f"reusing kept environment red (run id {run_id}" in out, out
        assert project.deploys() == []
        _bannou_env(project, "update", run_id, "update-env:main:FOO=baz")  # version 4
        code, out = project.run("-q", "-p", "no:cacheprovider", "--bannou-reuse")
        assert code == 0, out
        assert f"kept environment red (run id {run_id}) not reused: it was changed after it was kept" in out
        assert "(configuration version 4: update-env main FOO=baz)" in out, out
        assert "deploying red" in out and [d["key"] for d in project.deploys()] == ["red"]
        assert not any(alive(p) for p in kept_pids)  # removed, by its run id
    finally:
        _clean(project, run_id)
    assert project.leftovers() == {}


SECRET = "s3cret-red-value"
LOUD_NODE = """
import os, runpy, sys
print("pw", os.environ["DB_PASSWORD"], flush=True)
sys.argv = ["node"]
runpy.run_module("pytest_bannou.reference.node", run_name="__main__")
"""


def test_secrets_are_masked_in_plans_presets_show_sections_and_report_files(project):
    project.write(
        "test_secret.py",
        """
        import pytest

        @pytest.mark.preset("red")
        def test_fails(bannou_env):
            bannou_env.status()
            assert False, "deliberate"
        """,
    )
    # the node prints its secret at start: the log section of the failure must not show it
    loud = project.write("loud_node.py", LOUD_NODE)
    preset = project.presets / "red.yaml"
    data = yaml.safe_load(preset.read_text())
    data["topology"]["nodes"][0]["command"] = [sys.executable, str(loud)]
    preset.write_text(yaml.safe_dump(data))
    code, out = project.run("-q", "-p", "no:cacheprovider", "--bannou-plan=text")
    assert code == 0 and SECRET not in out, out
    code, out = project.run("-q", "-p", "no:cacheprovider", "--bannou-plan=json")
    assert code == 0 and SECRET not in out, out
    show = subprocess.run(
        [sys.executable, "-m", "pytest_bannou.cli", "presets", "show", "red"],
        env={**project.env, "BANNOU_PRESETS_DIR": str(project.presets)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert show.returncode == 0, show.stderr
    assert SECRET not in show.stdout and "DB_PASSWORD=******" in show.stdout, show.stdout
    report = project.path / "report"
    code, out = project.run("-q", "-p", "no:cacheprovider", "-rA", f"--bannou-report={report}")
    assert code == 1, out
    assert "bannou logs main" in out and "pw ******" in out, out
    assert SECRET not in out
    files = [p for p in report.rglob("*") if p.is_file()]
    assert files, out
    for path in files:
        assert SECRET not in path.read_text(errors="replace"), path
    assert json.loads((report / "results.json").read_text())
    assert project.leftovers() == {}


def test_reuse_leaves_another_projects_kept_environment_alone(project, tmp_path):
    # two projects keep an environment named alike: one's --bannou-reuse removed the other's kept
    # run as "the preset changed" (found when two test runs shared the machine's runs root)
    _preset, run_id, kept_pids = _keep_red(project)
    other = Project(tmp_path / "other-project")
    try:
        other.write("test_one.py", ONE)
        code, out = other.run("-q", "-p", "no:cacheprovider", "--bannou-reuse")
        assert code == 0, out
        assert run_id not in out and "deploying red" in out, out  # its own, from its preset
        assert all(alive(p) for p in kept_pids)  # the first project's kept run still runs
    finally:
        other.cleanup()
        _clean(project, run_id)
    assert project.leftovers() == {}
