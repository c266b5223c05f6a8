"""Secret values never leave the plugin in clear (issue 12, points 4 and 6).

Derived environments keep a secret override out of their key (a short hash keeps two secrets
apart); secret values known to the environment are masked in the terminal, in the sections the
plugin adds to pytest's reports (so ``--junitxml``), in tester output, in ``--bannou-report``
files and in ``bannou-env logs``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.bannou_pytester import BannouPytester, deploy_lines

FIRST = "hunter2-first-value"
SECOND = "hunter2-other-value"
SECRET = "s3cret-loud-value"
LOUD_NODE = """
import os, runpy, sys
print("pw", os.environ["DB_PASSWORD"], flush=True)
sys.argv = ["node"]
runpy.run_module("pytest_bannou.reference.node", run_name="__main__")
"""
MASKED_KEY = re.compile(r"alpha\[env:DB_PASSWORD=\*{6}#[0-9a-f]{6}\]")


def files_under(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()]


def assert_nowhere(secrets: tuple[str, ...], output: str, files: list[Path]) -> None:
    for secret in secrets:
        assert secret not in output, output
        for path in files:
            assert secret not in path.read_text(errors="replace"), path


def test_secret_marker_overrides_are_masked_in_keys_and_stay_distinct(
    bannou_pytester: BannouPytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the values come from the environment: the test's own source (shown by pytest) holds none
    monkeypatch.setenv("FIRST_SECRET", FIRST)
    monkeypatch.setenv("SECOND_SECRET", SECOND)
    bannou_pytester.pytester.makepyfile(
        """
        import os
        import pytest

        @pytest.mark.preset("alpha", environment={"DB_PASSWORD": os.environ["FIRST_SECRET"]})
        def test_first(bannou_env):
            assert bannou_env.topology.node("main").environment["DB_PASSWORD"] == os.environ["FIRST_SECRET"]

        @pytest.mark.preset("alpha", environment={"DB_PASSWORD": os.environ["SECOND_SECRET"]})
        def test_second(bannou_env):
            assert bannou_env.topology.node("main").environment["DB_PASSWORD"] == os.environ["SECOND_SECRET"]
            assert False, "deliberate: the failure shows the environment's status section"
        """
    )
    report = bannou_pytester.pytester.path / "report"
    junit = bannou_pytester.pytester.path / "pytest-junit.xml"
    result = bannou_pytester.run("-v", "-rA", f"--bannou-report={report}", f"--junitxml={junit}")
    result.assert_outcomes(passed=1, failed=1)
    output = result.stdout.str() + result.stderr.str()
    assert_nowhere((FIRST, SECOND), output, [junit, *files_under(report)])
    keys = [MASKED_KEY.search(line) for line in deploy_lines(result)]
    assert all(keys) and len({k.group(0) for k in keys if k}) == 2, deploy_lines(result)
    assert "results.json" in {p.name for p in files_under(report)}


def test_secrets_masked_in_sections_tester_output_reports_and_cli_logs(
    bannou_pytester: BannouPytester,
) -> None:
    loud = bannou_pytester.pytester.path / "loud_node.py"
    loud.write_text(LOUD_NODE)
    (bannou_pytester.presets / "loud.yaml").write_text(
        textwrap.dedent(
            f"""
            name: loud
            description: a node and a tester that print a secret
            topology:
              nodes:
                - name: main
                  appId: bannou
                  command: [{sys.executable}, {loud}]
                  environment: {{DB_PASSWORD: {SECRET}}}
            testers:
              - name: leaky
                command: [python, -c, "print('tester sees {SECRET}'); raise SystemExit(1)"]
                format: exit-code
                timeout: 60s
            """
        )
    )
    bannou_pytester.pytester.makepyfile(
        """
        def test_fails(bannou_env):
            bannou_env.status()
            assert False, "deliberate"
        """
    )
    report = bannou_pytester.pytester.path / "report"
    junit = bannou_pytester.pytester.path / "pytest-junit.xml"
    result = bannou_pytester.run_subprocess(
        "-rA", "--bannou-preset=loud", "--bannou-keep", f"--bannou-report={report}", f"--junitxml={junit}"
    )
    output = result.stdout.str() + result.stderr.str()
    run_id = re.search(r"run id (\S+)", output)
    assert run_id, output
    try:
        assert result.ret == 1, output
        assert "bannou logs main" in output and "pw ******" in output, output
        assert "tester sees ******" in output, output
        assert_nowhere((SECRET,), output, [junit, *files_under(report)])
        assert "tester sees ******" in junit.read_text()
        logs = cli("logs", run_id.group(1), "main")
        assert logs.returncode == 0, logs.stderr
        assert "pw ******" in logs.stdout and SECRET not in logs.stdout, logs.stdout
    finally:
        cleaned = cli("clean", "--run-id", run_id.group(1))
        assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_bannou.cli", *args], capture_output=True, text=True, timeout=120
    )
