"""Inner pytest sessions (``pytester``) against presets in a tmp dir: the one helper behind the
``bannou_pytester`` fixture (tests/conftest.py) of every suite that runs pytest inside pytest."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pytest

# Imported here (tests/conftest.py imports this module), before pytester's in-process runs
# snapshot sys.modules: a module first imported inside an inner run is dropped after it, and
# PyYAML re-imported next to its already-loaded C extension (libyaml) cannot construct anything.
import pytest_bannou.backends.local.backend
import pytest_bannou.health.probes
import pytest_bannou.health.wait
import pytest_bannou.preset
import pytest_bannou.report
import pytest_bannou.scheduling.plan
import pytest_bannou.testers  # noqa: F401
from pytest_bannou.environment.runs import runs_root
from pytest_bannou.plugin.options import OPTIONS

# variables an inner run must not inherit from the shell that runs the suite
CLEARED_ENV = (
    *(opt.env for opt in OPTIONS),
    "BANNOU_INFRA",
    "BANNOU_REFERENCE_STARTUP_DELAY",
    "BANNOU_REFERENCE_EXIT_CODE",
)

PRESETS = {
    # one node hosting everything (app id bannou: the main node)
    "alpha": """
        name: alpha
        description: one node
        topology:
          nodes:
            - name: main
              appId: bannou
              environment: {FLAVOUR: alpha}
        """,
    # auth on its own node
    "beta": """
        name: beta
        description: auth split off
        topology:
          nodes:
            - name: main
              appId: bannou
              environment: {FLAVOUR: alpha}
            - name: authn
              services: [auth, account]
        """,
    # like alpha with another environment: alpha -> gamma recreates main
    "gamma": """
        name: gamma
        description: one node, other settings
        topology:
          nodes:
            - name: main
              appId: bannou
              environment: {FLAVOUR: gamma}
        """,
    # a node that exits at start
    "broken": """
        name: broken
        description: a node that exits
        topology:
          nodes:
            - name: crasher
              appId: bannou
              environment: {BANNOU_REFERENCE_EXIT_CODE: "3"}
        """,
    # a node that takes a minute to listen
    "slow": """
        name: slow
        description: a node that is never ready in time
        topology:
          nodes:
            - name: sleeper
              appId: bannou
              environment: {BANNOU_REFERENCE_STARTUP_DELAY: "60"}
        """,
}


class BannouPytester:
    """Runs inner pytest sessions against a presets dir holding ``PRESETS`` (alpha, beta, gamma,
    broken, slow) and whatever a test adds with ``preset``; ``pytester`` is there for files."""

    def __init__(self, pytester: pytest.Pytester, presets: Mapping[str, str] = PRESETS) -> None:
        self.pytester = pytester
        self.presets = pytester.mkdir("presets")
        self.results: list[pytest.RunResult] = []
        for name, text in presets.items():
            self.preset(name, text)

    def preset(self, name: str, text: str) -> Path:
        """Write preset ``name`` (YAML ``text``, dedented) into the presets dir."""
        path = self.presets / f"{name}.yaml"
        path.write_text(textwrap.dedent(text))
        return path

    def script(self, name: str, text: str) -> Path:
        """Write a file (a tester script, ...) beside the inner tests."""
        path = self.pytester.path / name
        path.write_text(textwrap.dedent(text))
        return path

    def args(self, *args: str) -> list[str]:
        return [f"--bannou-presets-dir={self.presets}", "-p", "no:cacheprovider", *args]

    def run(self, *args: str) -> pytest.RunResult:
        """An in-process inner session."""
        return self._seen(self.pytester.runpytest(*self.args(*args)))

    def run_subprocess(self, *args: str, timeout: float = 120) -> pytest.RunResult:
        """An inner session in a subprocess (real signals, xdist, process-wide state)."""
        return self._seen(self.pytester.runpytest_subprocess(*self.args(*args), timeout=timeout))

    def run_with(self, python: str, *args: str, timeout: float = 120) -> pytest.RunResult:
        """An inner session in a subprocess of another interpreter (another virtualenv)."""
        basetemp = self.pytester.path / "basetemp-other-python"
        argv = [python, "-m", "pytest", f"--basetemp={basetemp}", *self.args(*args)]
        return self._seen(self.pytester.run(*argv, timeout=timeout))

    def _seen(self, result: pytest.RunResult) -> pytest.RunResult:
        self.results.append(result)
        return result

    def remove_run_directories(self) -> None:
        remove_run_directories(self.results)


def bannou_pytester_fixture(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> Iterator[BannouPytester]:
    """Body of the ``bannou_pytester`` fixture: a clean option environment, the helper, and
    afterwards the run directories its failed inner runs kept."""
    for var in CLEARED_ENV:
        monkeypatch.delenv(var, raising=False)
    helper = BannouPytester(pytester)
    yield helper
    helper.remove_run_directories()


def remove_run_directories(results: Iterable[pytest.RunResult]) -> None:
    """Failed inner runs keep their node logs (and say where): remove those these runs made."""
    for result in results:
        for line in result.outlines:
            if line.startswith("node logs of this run: "):
                path = Path(line.split(": ", 1)[1])
                if path.parent == runs_root():
                    shutil.rmtree(path, ignore_errors=True)


def deploy_lines(result: pytest.RunResult) -> list[str]:
    """The progress lines that started an environment (fresh deploy or transition)."""
    return [
        line
        for line in result.outlines
        if line.startswith("bannou: deploying ") or line.startswith("bannou: transition to ")
    ]
