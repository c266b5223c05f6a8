"""Issue 17: a fault a test makes (kill, pause) is undone before the next test of the same
preset, reported as a ``bannou: fault:`` line, and an unsupported fault is a clear error."""

from __future__ import annotations

import re

from tests.support.bannou_pytester import deploy_lines

TESTS = """
import httpx
import pytest
from pytest_bannou.errors import BackendUnavailable, DeployError

pytestmark = pytest.mark.preset("beta")
SEEN = {}


def answers(env, node, timeout=5.0):
    try:
        return httpx.get(env.url(node) + "/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def test_1_pause_and_kill(bannou_env):
    SEEN["main"] = {s.id for s in bannou_env.status() if s.node == "main"}
    bannou_env.pause("auth")  # a service name: the node bannou routes it to (authn)
    assert not answers(bannou_env, "authn", timeout=1.0)
    bannou_env.kill("main")
    assert [s.state for s in bannou_env.status() if s.node == "main"] == ["exited"]


def test_2_starts_without_faults(bannou_env):
    assert answers(bannou_env, "authn") and answers(bannou_env, "main")
    assert {s.state for s in bannou_env.status()} == {"running"}
    assert {s.id for s in bannou_env.status() if s.node == "main"} != SEEN["main"]


def test_3_context_manager_resumes_when_the_block_fails(bannou_env):
    with pytest.raises(ZeroDivisionError):
        with bannou_env.paused("authn"):
            assert not answers(bannou_env, "authn", timeout=1.0)
            1 / 0
    assert answers(bannou_env, "authn")
    with pytest.raises(BackendUnavailable, match="not supported by the local backend.*can: compose"):
        bannou_env.disconnect("authn")
    with pytest.raises(DeployError, match="nope"):
        bannou_env.kill("nope")


def test_4_paused_at_the_end(bannou_env):
    bannou_env.pause("authn")  # teardown must not hang on it
"""


def test_a_fault_is_undone_before_the_next_test(bannou_pytester):
    bannou_pytester.pytester.makepyfile(TESTS)
    # a long grace: a teardown that waited on the paused node (SIGTERM held) would take it all
    grace = ("--bannou-backend-option", "grace_period=30")
    result = bannou_pytester.run_subprocess("-p", "no:randomly", "-v", *grace, timeout=300)
    result.assert_outcomes(passed=4)
    assert len(deploy_lines(result)) == 1
    faults = [line for line in result.outlines if line.startswith("bannou: fault: ")]
    assert faults[:2] == [
        "bannou: fault: pause authn on beta ... done",
        "bannou: fault: kill main on beta ... done",
    ]
    undo = [line for line in result.outlines if line.startswith("bannou: undoing faults on beta")]
    assert len(undo) == 1, result.outlines
    assert re.fullmatch(
        r"bannou: undoing faults on beta: pause authn; kill main \.\.\. ready in \d+\.\d s", undo[0]
    )
    assert any(line.startswith("bannou: fault: disconnect authn on beta ... FAILED") for line in faults)
    teardown = [line for line in result.outlines if line.startswith("bannou: teardown beta")]
    assert teardown and float(re.search(r"(\d+\.\d) s", teardown[0]).group(1)) < 20.0, teardown


REPORTED = """
import pytest

pytestmark = pytest.mark.preset("beta")


def test_1_pause_and_kill(bannou_env):
    with bannou_env.paused("authn"):
        pass
    bannou_env.kill("main")


def test_2_no_faults(bannou_env):
    pass
"""


def test_faults_are_in_the_report(bannou_pytester, tmp_path):
    """results.json lists each test's faults, the timeline marks them on their environment,
    and merging partial reports keeps them (once)."""
    from dataclasses import replace

    from pytest_bannou.report import merge_reports, read_json, render_html

    bannou_pytester.pytester.makepyfile(REPORTED)
    out = tmp_path / "report"
    result = bannou_pytester.run_subprocess("-p", "no:randomly", "--bannou-report", str(out), timeout=300)
    result.assert_outcomes(passed=2)
    report = read_json(out / "results.json")  # valid against results.schema.json
    tests = {t.nodeid.split("::")[-1]: t for t in report.tests}
    made = [(f.action, f.node, f.env_key, f.undo) for f in tests["test_1_pause_and_kill"].faults]
    assert made == [
        ("pause", "authn", "beta", False),
        ("resume", "authn", "beta", False),
        ("kill", "main", "beta", False),
    ]
    assert tests["test_2_no_faults"].faults == []
    (beta,) = report.presets
    first = "test_faults_are_in_the_report.py::test_1_pause_and_kill"
    assert [(f.action, f.node, f.undo, f.test) for f in beta.faults] == [
        ("pause", "authn", False, first),
        ("resume", "authn", False, first),
        ("kill", "main", False, first),
        ("restart", "main", True, None),  # the plugin's undoing, before test_2
    ]
    html = (out / "report.html").read_text()
    assert html.count('<path class="fault"') == 4
    assert f"beta: fault kill main by {first} at " in html
    assert "beta: fault restart main (undo) at " in html

    # xdist: two workers' partials of one run; CI: two runs (the env key is renamed, faults follow)
    one = replace(report, worker="gw0", tests=report.tests[:1])
    two = replace(report, worker="gw1", tests=report.tests[1:])
    merged = merge_reports([one, two])
    assert merged.presets[0].faults == beta.faults
    assert {t.nodeid: t.faults for t in merged.tests} == {t.nodeid: t.faults for t in report.tests}
    other = replace(report, run_id="other-run", ci_job="job2")
    across = merge_reports([replace(report, ci_job="job1"), other])
    assert sorted(p.env_key for p in across.presets) == ["beta@job1", "beta@job2"]
    for preset in across.presets:
        assert [f.env_key for f in preset.faults] == [preset.env_key] * 4
    assert all(f.env_key == t.preset for t in across.tests for f in t.faults)
    assert "beta@job2: fault pause authn by" in render_html(across)


def test_faults_in_the_report_under_xdist(bannou_pytester, tmp_path):
    """A worker's faults reach the controller's merged results.json, under the test that made them."""
    from pytest_bannou.report import read_json

    bannou_pytester.pytester.makepyfile(REPORTED)
    out = tmp_path / "report"
    result = bannou_pytester.run_subprocess(
        "-p", "no:randomly", "-n", "2", "--bannou-report", str(out), timeout=300
    )
    result.assert_outcomes(passed=2)
    report = read_json(out / "results.json")
    made = {t.nodeid.split("::")[-1]: [(f.action, f.node) for f in t.faults] for t in report.tests}
    assert made == {
        "test_1_pause_and_kill": [("pause", "authn"), ("resume", "authn"), ("kill", "main")],
        "test_2_no_faults": [],
    }
    faults = [f for p in report.presets for f in p.faults if not f.undo]
    assert [(f.action, f.test.split("::")[-1]) for f in faults] == [
        ("pause", "test_1_pause_and_kill"),
        ("resume", "test_1_pause_and_kill"),
        ("kill", "test_1_pause_and_kill"),
    ]
    html = (out / "report.html").read_text()
    assert html.count('<path class="fault"') == sum(len(p.faults) for p in report.presets)
