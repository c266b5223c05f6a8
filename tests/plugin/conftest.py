"""pytester helpers: small custom presets in a tmp dir and a clean option environment."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator

import pytest
from inner_runs import remove_run_directories

# Imported here, before pytester's in-process runs snapshot sys.modules: a module first imported
# inside an inner run is dropped after it, and PyYAML re-imported next to its already-loaded C
# extension (libyaml) cannot construct anything any more.
import pytest_bannou.backends.local.backend
import pytest_bannou.health.probes
import pytest_bannou.health.wait
import pytest_bannou.preset
import pytest_bannou.scheduling.plan  # noqa: F401
from pytest_bannou.plugin.options import OPTIONS

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
    """Runs inner pytest sessions against the presets above."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.presets = pytester.mkdir("presets")
        self.results: list[pytest.RunResult] = []
        for name, text in PRESETS.items():
            (self.presets / f"{name}.yaml").write_text(textwrap.dedent(text))

    def args(self, *args: str) -> list[str]:
        return [f"--bannou-presets-dir={self.presets}", "-p", "no:cacheprovider", *args]

    def run(self, *args: str) -> pytest.RunResult:
        return self._seen(self.pytester.runpytest(*self.args(*args)))

    def run_subprocess(self, *args: str, timeout: float = 120) -> pytest.RunResult:
        return self._seen(self.pytester.runpytest_subprocess(*self.args(*args), timeout=timeout))

    def _seen(self, result: pytest.RunResult) -> pytest.RunResult:
        self.results.append(result)
        return result

    def remove_run_directories(self) -> None:
        remove_run_directories(self.results)


@pytest.fixture
def bp(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Iterator[BannouPytester]:
    for opt in OPTIONS:
        monkeypatch.delenv(opt.env, raising=False)
    monkeypatch.delenv("BANNOU_REFERENCE_STARTUP_DELAY", raising=False)
    monkeypatch.delenv("BANNOU_REFERENCE_EXIT_CODE", raising=False)
    helper = BannouPytester(pytester)
    yield helper
    helper.remove_run_directories()


def deploy_lines(result: pytest.RunResult) -> list[str]:
    """The progress lines that started an environment (fresh deploy or transition)."""
    return [
        line
        for line in result.outlines
        if line.startswith("bannou: deploying ") or line.startswith("bannou: transition to ")
    ]
