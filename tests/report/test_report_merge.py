"""merge_reports: CI jobs keep their presets, xdist workers combine, duplicates resolve the same way
whatever the input order."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from pytest_bannou.errors import BannouError
from pytest_bannou.report import PresetRecord, TestRecord, TimelineEvent, merge_reports
from pytest_bannou.report.json_io import dumps


def test_ci_jobs_keep_each_jobs_presets(report_factory):
    local = report_factory(run_id="run-1", backend="local", ci_job="local")
    docker = report_factory(run_id="run-2", backend="compose", ci_job="docker")
    docker.started_at += 5
    merged = merge_reports([docker, local])
    keys = [p.env_key for p in merged.presets]
    assert keys == ["monolith@local", "split-auth@local", "monolith@docker", "split-auth@docker"]
    assert {p.env_key: p.backend for p in merged.presets}["monolith@docker"] == "compose"
    # every test follows its environment's rename; nothing lost
    per_env = {k: [t for t in merged.tests if t.preset == k] for k in keys}
    assert all(len(tests) == 6 for tests in per_env.values())
    assert merged.backend == "compose+local"
    assert merged.ci_job is None
    assert merged.run_id.startswith("merged-")
    assert merged.sources == ["run-1 local local -", "run-2 docker compose -"]
    assert merged.started_at == local.started_at
    assert merged.finished_at == docker.finished_at
    # the test without preset ran in both jobs with the same outcome: one result
    assert [t.nodeid for t in merged.tests if t.preset is None] == ["tests/test_plain.py::test_no_env"]


def test_disjoint_presets_are_not_renamed(report_factory):
    a = report_factory(run_id="run-1", ci_job="a", presets=("monolith",))
    b = report_factory(run_id="run-2", ci_job="b", presets=("test-edge",))
    merged = merge_reports([a, b])
    assert [p.env_key for p in merged.presets] == ["monolith", "test-edge"]


def test_jobs_with_same_name_are_told_apart_by_run_id(report_factory):
    a = report_factory(run_id="run-1", ci_job="job")
    b = report_factory(run_id="run-2", ci_job="job")
    merged = merge_reports([a, b])
    assert merged.ci_job == "job"
    assert {p.env_key for p in merged.presets} == {
        "monolith@run-1",
        "split-auth@run-1",
        "monolith@run-2",
        "split-auth@run-2",
    }


def test_xdist_workers_of_one_run_combine_environments(report_factory):
    full = report_factory(run_id="run-x", presets=("monolith",))
    env = full.presets[0]
    deployer = replace(full, worker="gw0", tests=full.tests[:3])
    deployer.presets = [replace(env, restarts={"bannou": 1}, teardown_s=None)]
    other = replace(full, worker="gw1", tests=full.tests[3:])
    other.presets = [
        replace(
            env,
            deploy_s=None,
            ready_s=None,
            nodes=["bannou", "redis", "rabbitmq", "extra"],
            restarts={"bannou": 2, "redis": 1},
            transitions=[],
            timeline=[*env.timeline[:2], TimelineEvent("tests", 50.0, 60.0)],
        )
    ]
    merged = merge_reports([other, deployer])
    assert len(merged.presets) == 1
    p = merged.presets[0]
    assert p.env_key == "monolith"
    assert p.deploy_s == env.deploy_s and p.teardown_s == env.teardown_s
    assert p.nodes == ["bannou", "redis", "rabbitmq", "extra"]
    assert p.restarts == {"bannou": 2, "redis": 1}
    assert len(p.timeline) == len(env.timeline) + 1  # shared events not doubled
    assert [e.t_start for e in p.timeline] == sorted(e.t_start for e in p.timeline)
    assert len(merged.tests) == len(full.tests)
    assert merged.run_id == "run-x"
    assert merged.worker is None
    assert merged.sources == ["run-x - local gw0", "run-x - local gw1"]


def test_duplicates_worst_outcome_wins_and_says_so(report_factory):
    base = report_factory(run_id="run-x", presets=("monolith",))
    nodeid = "tests/test_auth.py::test_health[monolith]"
    a = replace(base, worker="gw0", tests=[TestRecord(nodeid, "monolith", "passed", 0.1)])
    b = replace(
        base, worker="gw1", tests=[TestRecord(nodeid, "monolith", "failed", 0.2, "boom", warnings=["w1"])]
    )
    c = replace(base, worker="gw2", tests=[TestRecord(nodeid, "monolith", "not_run")])
    merged = merge_reports([a, b, c])
    assert len(merged.tests) == 1
    kept = merged.tests[0]
    assert kept.outcome == "failed" and kept.longrepr_summary == "boom"
    assert kept.warnings[0] == "w1"
    assert (
        kept.warnings[1]
        == "reported 3 times with different outcomes: failed (gw1), passed (gw0), not_run (gw2)"
    )


def test_identical_duplicates_collapse_silently(report_factory):
    r = report_factory()
    merged = merge_reports([r, replace(r, worker="gw0")])
    assert len(merged.tests) == len(r.tests)
    assert all(not t.warnings or "different outcomes" not in t.warnings[-1] for t in merged.tests)


def test_result_does_not_depend_on_input_order(report_factory):
    a = report_factory(run_id="run-1", ci_job="a")
    b = report_factory(run_id="run-2", ci_job="b", backend="compose")
    c = replace(report_factory(run_id="run-1"), worker="gw1")
    c.tests = [replace(t, outcome="error", longrepr_summary="teardown failed") for t in c.tests[:2]]
    c.presets = [PresetRecord("monolith", "monolith", nodes=["bannou", "late-node"])]
    outputs = {dumps(merge_reports(list(order))) for order in itertools.permutations([a, b, c])}
    assert len(outputs) == 1


def test_merging_a_merge_is_stable(report_factory):
    merged = merge_reports([report_factory(run_id="r1", ci_job="a"), report_factory(run_id="r2", ci_job="b")])
    again = merge_reports([merged])
    assert dumps(again) == dumps(merged)


def test_tests_of_an_unrecorded_environment_are_renamed_too(report_factory):
    a = report_factory(run_id="run-1", ci_job="a")
    b = report_factory(run_id="run-2", ci_job="b")
    b.presets = []  # the job crashed before reporting its environments
    merged = merge_reports([a, b])
    assert {t.preset for t in merged.tests if t.preset} == {
        "monolith@a",
        "split-auth@a",
        "monolith@b",
        "split-auth@b",
    }


def test_nothing_to_merge_is_a_clear_error():
    with pytest.raises(BannouError, match="no reports to merge"):
        merge_reports([])


def test_faults_survive_merges_once_and_follow_renames(report_factory):
    from pytest_bannou.report import FaultRecord

    base = report_factory(run_id="run-1", ci_job="job-a")
    key = base.presets[0].env_key
    fault = FaultRecord("pause", "auth", at=base.started_at + 2, env_key=key, test=base.tests[0].nodeid)
    base.presets[0].faults = [fault]
    base.tests[0].faults = [fault]
    workers = [replace(base, worker="gw0"), replace(base, worker="gw1", tests=[])]
    merged = merge_reports(workers)
    assert merged.presets[0].faults == [fault]  # the same fault from two partials: once
    assert merged.tests[0].faults == [fault]
    assert merge_reports(list(reversed(workers))) == merged
    other = replace(base, run_id="run-2", ci_job="job-b")
    across = merge_reports([base, other])
    renamed = {p.env_key: p.faults for p in across.presets if p.faults}
    assert {k: [f.env_key for f in v] for k, v in renamed.items()} == {
        f"{key}@job-a": [f"{key}@job-a"],
        f"{key}@job-b": [f"{key}@job-b"],
    }
    assert sorted(f.env_key for t in across.tests for f in t.faults) == [f"{key}@job-a", f"{key}@job-b"]
