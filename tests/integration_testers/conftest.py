"""pytester helpers for the tester/report integration: presets with testers in a tmp dir."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from inner_runs import remove_run_directories

# imported before pytester's in-process runs snapshot sys.modules (see tests/plugin/conftest.py)
import pytest_bannou.backends.local.backend
import pytest_bannou.preset
import pytest_bannou.report
import pytest_bannou.testers  # noqa: F401
from pytest_bannou.plugin.options import OPTIONS

DATA = Path(__file__).parents[1] / "testers" / "data"


def preset_yaml(name: str, testers: str, nodes: str = "") -> str:
    """A one-node preset (the reference node) with the given ``testers:`` YAML block."""
    nodes = (
        nodes
        or """
          nodes:
            - name: main
              appId: bannou
    """
    )
    return (
        textwrap.dedent(
            f"""
        name: {name}
        description: tester integration
        topology:
        """
        )
        + textwrap.indent(textwrap.dedent(nodes).strip("\n"), "  ")
        + "\n"
        + textwrap.dedent(testers)
    )


class InnerRuns:
    """Inner pytest sessions (subprocesses) against presets written into a tmp dir."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.presets = pytester.mkdir("presets")
        self.results: list[pytest.RunResult] = []

    def preset(self, name: str, text: str) -> Path:
        path = self.presets / f"{name}.yaml"
        path.write_text(text)
        return path

    def script(self, name: str, text: str) -> Path:
        path = self.pytester.path / name
        path.write_text(textwrap.dedent(text))
        return path

    def run(self, *args: str, timeout: float = 120) -> pytest.RunResult:
        argv = [f"--bannou-presets-dir={self.presets}", "-p", "no:cacheprovider", *args]
        result = self.pytester.runpytest_subprocess(*argv, timeout=timeout)
        self.results.append(result)
        return result

    def remove_run_directories(self) -> None:
        remove_run_directories(self.results)


@pytest.fixture
def tp(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Iterator[InnerRuns]:
    for opt in OPTIONS:
        monkeypatch.delenv(opt.env, raising=False)
    for var in ("BANNOU_INFRA", "BANNOU_REFERENCE_STARTUP_DELAY", "BANNOU_REFERENCE_EXIT_CODE"):
        monkeypatch.delenv(var, raising=False)
    helper = InnerRuns(pytester)
    yield helper
    helper.remove_run_directories()
