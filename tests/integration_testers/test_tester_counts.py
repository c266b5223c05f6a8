"""Tester items in the counts and in -k/-m selection (issue 14 point 5)."""

from __future__ import annotations

import re

from tests.support.bannou_pytester import BannouPytester
from tests.support.testers import preset_yaml

TESTS = """
import pytest

@pytest.mark.preset("one")
def test_one(bannou_env):
    pass
"""


def _setup(bannou_pytester: BannouPytester) -> None:
    bannou_pytester.preset(
        "one",
        preset_yaml(
            "one",
            """
            testers:
              - name: ok
                command: [python, -c, "print('fine')"]
                format: exit-code
            """,
        ),
    )
    bannou_pytester.pytester.makepyfile(test_sel=TESTS)


def test_collection_line_and_summary_say_how_many_tester_cases(bannou_pytester: BannouPytester) -> None:
    _setup(bannou_pytester)
    result = bannou_pytester.run_subprocess()
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        ["collected 1 item", "bannou: 1 tester item (cases are reported one result each)"]
    )
    result.assert_outcomes(passed=3)  # the test, the tester item and its one case
    header = next(line for line in result.outlines if line.startswith("env "))
    row = next(line for line in result.outlines if line.startswith("one "))
    columns = dict(zip(re.split(r"\s{2,}", header), re.split(r"\s{2,}", row), strict=True))
    assert columns["passed"] == "2" and columns["tester cases"] == "1"


def test_k_and_m_select_tester_items_unless_forced(bannou_pytester: BannouPytester) -> None:
    _setup(bannou_pytester)
    out = bannou_pytester.run_subprocess("--collect-only", "-q", "-k", "not tester").stdout.str()
    assert "tester::ok[one]" not in out and "test_sel.py::test_one" in out
    out = bannou_pytester.run_subprocess(
        "--collect-only", "-q", "--bannou-preset=one", "-k", "ok"
    ).stdout.str()
    assert "tester::ok[one]" in out and "test_sel.py::test_one" not in out
    out = bannou_pytester.run_subprocess(
        "--collect-only", "-q", "-m", "slow", "--bannou-preset=one"
    ).stdout.str()
    assert "tester::ok[one]" not in out
    # --bannou-testers forces them on (always) or off (never) whatever -k says
    out = bannou_pytester.run_subprocess(
        "--collect-only", "-q", "-k", "not tester", "--bannou-testers=always"
    ).stdout.str()
    assert "tester::ok[one]" in out
    out = bannou_pytester.run_subprocess(
        "--collect-only", "-q", "-k", "ok or one", "--bannou-testers=never"
    ).stdout.str()
    assert "tester::" not in out
    ran = bannou_pytester.run_subprocess("-k", "not tester")
    ran.assert_outcomes(passed=1, deselected=1)
