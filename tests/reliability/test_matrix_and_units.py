"""--bannou-matrix, the CI workflow example, run ids in CI, and the pure parts of distribution,
secrets and sweep."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from pytest_bannou._support import masking as secrets
from pytest_bannou.environment import sweep
from pytest_bannou.environment.runs import new_run_id, run_directory
from pytest_bannou.plugin import xdist as distribution

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ci"

MARKED = """
import pytest

@pytest.mark.preset("red")
@pytest.mark.parametrize("i", range(3))
def test_red(bannou_env, i):
    pass

@pytest.mark.preset("blue", "green")
def test_both(bannou_env):
    pass

@pytest.mark.preset("gold")
def test_marked_without_env():
    pass

def test_plain():
    pass
"""


def _matrix(out: str) -> dict:
    lines = [line for line in out.splitlines() if line.startswith('{"include"')]
    assert len(lines) == 1, out
    return json.loads(lines[0])


def test_matrix_lists_presets_with_backends_and_counts_without_deploying(project):
    project.write("test_m.py", MARKED)
    (project.presets / "blue.yaml").write_text(
        (project.presets / "blue.yaml").read_text() + "requiredBackends: [local, compose]\n"
    )
    code, out = project.run("--bannou-matrix", "-p", "no:terminal")
    assert code == 0, out
    assert json.loads(out.strip()) == {
        "include": [
            {"preset": "blue", "backends": ["local", "compose"], "tests": 1, "backend": "local"},
            {"preset": "gold", "backends": [], "tests": 1, "backend": "local"},
            {"preset": "green", "backends": [], "tests": 1, "backend": "local"},
            {"preset": "red", "backends": [], "tests": 3, "backend": "local"},
        ]
    }
    assert project.deploys() == []
    code, out = project.run("--bannou-matrix", "-n2", "--bannou-preset=red", "-q")  # xdist off
    assert code == 0, out
    assert _matrix(out) == {"include": [{"preset": "red", "backends": [], "tests": 3, "backend": "local"}]}
    assert project.deploys() == []


def test_matrix_of_a_suite_without_presets_is_empty_and_exits_0(project):
    project.write("test_plain.py", "def test_plain():\n    pass\n")
    code, out = project.run("-p", "no:terminal", BANNOU_MATRIX="1")
    assert code == 0, out
    assert json.loads(out.strip()) == {"include": []}


def test_the_ci_example_computes_the_matrix_runs_one_job_per_preset_and_merges():
    workflow = yaml.safe_load((EXAMPLES / "bannou-matrix.yml").read_text())
    jobs = workflow["jobs"]
    assert "--bannou-matrix" in json.dumps(jobs["matrix"])
    assert jobs["preset"]["needs"] == "matrix"
    assert "fromJSON(needs.matrix.outputs.matrix)" in jobs["preset"]["strategy"]["matrix"]
    run = " ".join(s.get("run", "") for s in jobs["preset"]["steps"])
    assert "--bannou-preset=${{ matrix.preset }}" in run and "--bannou-report=" in run
    assert "bannou-env report merge" in " ".join(s.get("run", "") for s in jobs["report"]["steps"])
    assert (EXAMPLES / "README.md").exists()


def test_run_ids_name_the_ci_job():
    gh = {"GITHUB_RUN_ID": "981", "GITHUB_JOB": "preset", "BANNOU_CI_MATRIX": "split-auth"}
    assert new_run_id(gh).endswith("-981-preset-split-auth")
    assert new_run_id({"GITHUB_RUN_ID": "981", "GITHUB_JOB": "t"}).endswith("-981-t")
    assert new_run_id({"BANNOU_CI_JOB_ID": "Job 7", **gh}).endswith("-job-7")
    assert new_run_id({"CI_JOB_ID": "55"}).endswith("-55")
    assert new_run_id({}).count("-") == 1
    assert new_run_id(gh) != new_run_id(gh)


def test_groups_are_handed_out_most_expensive_first():
    units = {
        "bannou:red": {f"r{i}": False for i in range(4)},
        "bannou:green": {f"g{i}": False for i in range(2)},
        "bannou:blue": {f"b{i}": False for i in range(3)},
        "t.py::test_plain": {"p": False},
    }
    # unknown durations: by test count
    assert distribution.order_by_cost(units, {}) == [
        "bannou:red",
        "bannou:blue",
        "bannou:green",
        "t.py::test_plain",
    ]
    # recorded: green's tests take 10 s each, red's 1 s
    order = distribution.order_by_cost(units, {"green": 10.0, "red": 1.0, "blue": 2.0, "": 0.01})
    assert order == ["bannou:green", "bannou:blue", "bannou:red", "t.py::test_plain"]
    assert distribution.expected_cost(3, None) == 3 * distribution.UNKNOWN_DURATION
    assert distribution.mean_durations({"red": (6.0, 3), "x": (1.0, 0)}) == {"red": 2.0}


def test_group_of_reads_xdist_group_suffixes():
    assert distribution.group_of("t.py::test_a[1]@bannou:red") == "red"
    assert distribution.group_of("t.py::test_a[x@y]") is None
    assert distribution.group_of("t.py::test_a@other") is None


def test_matrix_counts_tests_per_preset():
    m = distribution.matrix([("b", ("compose",)), ("a", ()), ("b", ("compose",))])
    assert m == {
        "include": [
            {"preset": "a", "backends": [], "tests": 1},
            {"preset": "b", "backends": ["compose"], "tests": 2},
        ]
    }


def test_secret_keys_and_masking():
    for key in ("MYSQL_ROOT_PASSWORD", "authToken", "AWS_SECRET_ACCESS_KEY", "APIKey", "db.credentials"):
        assert secrets.is_secret_key(key), key
    for key in ("KEYCLOAK_URL", "MONKEY", "TOKENIZER_MODE", "BANNOU_APP_ID", "PATH"):
        assert not secrets.is_secret_key(key), key
    env = {"DB_PASSWORD": "hunter22", "FLAVOUR": "red", "API_TOKEN": ""}
    assert secrets.mask_environment(env) == {"DB_PASSWORD": secrets.MASK, "FLAVOUR": "red", "API_TOKEN": ""}
    found = secrets.secret_values(env)
    assert found == {"hunter22"}
    assert secrets.mask_text("connect with hunter22 now", found) == f"connect with {secrets.MASK} now"
    assert secrets.mask_text("x=1", {"1"}) == "x=1"  # too short to mask anything safely
    data = {"env": {"API_KEY": "abcdef"}, "log": ["abcdef!"]}
    assert secrets.mask_data(data, {"abcdef"}) == {
        "env": {"API_KEY": secrets.MASK},
        "log": [f"{secrets.MASK}!"],
    }


def test_sweep_spares_kept_and_owned_runs(tmp_path):
    rid = new_run_id()
    d = run_directory(rid)
    try:
        d.mkdir(parents=True)
        assert sweep.spared(rid) is None
        sweep.write_owner(rid)
        assert "live process" in sweep.spared(rid)
        (d / sweep.OWNER_FILE).write_text("999999999")
        assert sweep.spared(rid) is None
        (d / "environment.json").write_text(json.dumps({"kept": True, "owner_pid": 999999999}))
        assert sweep.spared(rid) == "kept"
        (d / "environment.json").write_text(json.dumps({"kept": False, "owner_pid": os.getpid()}))
        assert sweep.spared(rid) == "its session still runs"
    finally:
        import shutil

        shutil.rmtree(d, ignore_errors=True)
