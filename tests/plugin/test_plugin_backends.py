"""A preset's ``requiredBackends`` decide where it runs (issue 14 point 4): under an explicit
``--bannou-backend`` a preset that does not allow it has its tests skipped with the reason;
``auto`` chooses per preset; the plan, the matrix and the summary table name the backend; an
environment that fails to deploy is still an environment of the report."""

from __future__ import annotations

import json
import re

SUITE = """
import pytest

@pytest.mark.preset("alpha")
def test_alpha(bannou_env):
    assert bannou_env.backend == "local"

@pytest.mark.preset("{needs}")
def test_needs(bannou_env):
    raise AssertionError("must not run here")

@pytest.mark.preset("{needs}")
def test_needs_marked_only():
    raise AssertionError("a test of the preset: skipped with it")
"""

NEEDS_COMPOSE = """
    name: needs-compose
    description: infrastructure the local backend cannot run
    requiredBackends: [docker-compose]
    topology:
      nodes:
        - name: main
          appId: bannou
"""

NEEDS_PORTAINER = NEEDS_COMPOSE.replace("needs-compose", "needs-portainer").replace(
    "[docker-compose]", "[portainer]"
)


def _suite(bannou_pytester, needs: str) -> None:
    bannou_pytester.preset("needs-compose", NEEDS_COMPOSE)
    bannou_pytester.preset("needs-portainer", NEEDS_PORTAINER)
    bannou_pytester.pytester.makepyfile(test_suite=SUITE.replace("{needs}", needs))


def _row(result, key: str) -> list[str]:
    line = next(line for line in result.outlines if line.startswith(f"{key} "))
    return re.split(r"\s{2,}", line)


def _json(result) -> dict:
    text = result.stdout.str()
    return json.JSONDecoder().raw_decode(text, text.index("{"))[0]


def test_a_preset_that_needs_another_backend_is_skipped_with_the_reason(bannou_pytester):
    _suite(bannou_pytester, "needs-compose")
    result = bannou_pytester.run("--bannou-backend=local", "-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] *: preset 'needs-compose' needs backend compose (requiredBackends), this "
            "session runs on local; select one with --bannou-backend=compose or --bannou-backend=auto",
        ]
    )
    assert len([line for line in result.outlines if line.startswith("SKIPPED")]) == 2
    deploys = [line for line in result.outlines if line.startswith("bannou: deploying ")]
    assert len(deploys) == 1 and "alpha on local" in deploys[0], deploys
    assert _row(result, "alpha")[1:2] == ["local"]
    assert _row(result, "needs-compose")[1] == "-"
    assert _row(result, "needs-compose")[4:8] == ["0", "0", "2", "0"]  # passed failed skipped errors


def test_auto_skips_a_preset_whose_required_backends_are_not_available(bannou_pytester):
    _suite(bannou_pytester, "needs-portainer")
    result = bannou_pytester.run("--bannou-backend=auto", "-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] *: preset 'needs-portainer' needs backend portainer (requiredBackends) and none "
            "is available here: portainer: no Portainer URL configured*",
        ]
    )
    assert _row(result, "alpha")[1] == "local"


def test_plan_and_matrix_name_each_presets_backend(bannou_pytester):
    _suite(bannou_pytester, "needs-compose")
    text = bannou_pytester.run("--bannou-backend=local", "--bannou-plan").stdout.str()
    assert "1. alpha on local (1 node, 1 test): start main" in text
    assert (
        "skipped: needs-compose (2 tests): preset 'needs-compose' needs backend compose "
        "(requiredBackends), this session runs on local" in text
    )
    plan = _json(bannou_pytester.run("--bannou-backend=local", "--bannou-plan=json"))
    assert [(g["env"], g["backend"]) for g in plan["groups"]] == [("alpha", "local")]
    assert [(s["env"], len(s["tests"])) for s in plan["skipped"]] == [("needs-compose", 2)]
    matrix = _json(bannou_pytester.run("--bannou-backend=local", "--bannou-matrix"))
    assert matrix["include"] == [
        {"preset": "alpha", "backends": [], "tests": 1, "backend": "local"},
        {"preset": "needs-compose", "backends": ["compose"], "tests": 2, "backend": None},
    ]


def test_a_preset_without_required_backends_runs_anywhere_it_is_asked(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.preset("alpha")
        def test_alpha(bannou_env):
            assert bannou_env.backend == "local"
        """
    )
    result = bannou_pytester.run("--bannou-backend=local")
    result.assert_outcomes(passed=1)
    result = bannou_pytester.run("--bannou-backend=auto")
    result.assert_outcomes(passed=1)


def test_a_failed_deploy_is_an_environment_of_the_report(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.preset("broken")
        def test_broken(bannou_env):
            pass

        @pytest.mark.preset("alpha")
        def test_alpha(bannou_env):
            pass
        """
    )
    report = bannou_pytester.pytester.path / "report"
    result = bannou_pytester.run(f"--bannou-report={report}")
    result.assert_outcomes(passed=1, errors=1)
    data = json.loads((report / "results.json").read_text())
    envs = {p["env_key"]: p for p in data["presets"]}
    assert set(envs) == {"broken", "alpha"}
    broken = envs["broken"]
    assert broken["backend"] == "local" and broken["nodes"] == ["crasher"]
    assert broken["error"] and "crasher" in broken["error"], broken
    assert envs["alpha"]["error"] is None
    events = [e["event"] for e in broken["timeline"]]
    assert "deploy failed" in events, events
    failed = next(e for e in broken["timeline"] if e["event"] == "deploy failed")
    assert failed["t_end"] >= failed["t_start"] >= data["started_at"]
    html = (report / "report.html").read_text()
    environments = html[
        html.index('<section id="presets">') : html.index("</section>", html.index('id="presets"'))
    ]
    assert "<td>broken</td>" in environments and "crasher" in environments
    assert "env-error" in environments
    assert "broken: deploy failed" in html  # its bar on the timeline
