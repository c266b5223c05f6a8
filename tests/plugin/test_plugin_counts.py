"""Plan, matrix and summary count the same tests of a preset (issue 14 point 5): a test is a
test of its preset when it carries the preset marker or uses a bannou fixture."""

from __future__ import annotations

import json
import re

SUITE = """
import pytest

pytestmark = pytest.mark.preset("alpha")

def test_env(bannou_env):
    pass

def test_http(bannou_http):
    assert bannou_http.get("/health").status_code == 200

def test_marked_only():  # no fixture: still one of alpha's tests, run with them
    pass
"""

FREE = """
def test_free():  # no marker, no fixture: a test of no preset
    pass
"""


def _json(result) -> dict:
    text = result.stdout.str()
    return json.JSONDecoder().raw_decode(text, text.index("{"))[0]


def test_plan_matrix_and_summary_count_the_same_tests(bannou_pytester):
    bannou_pytester.pytester.makepyfile(test_a=SUITE, test_free=FREE)
    plan = _json(bannou_pytester.run("--bannou-plan=json"))
    (group,) = plan["groups"]
    assert sorted(group["tests"]) == [
        "test_a.py::test_env",
        "test_a.py::test_http",
        "test_a.py::test_marked_only",
    ]
    matrix = _json(bannou_pytester.run("--bannou-matrix"))
    assert matrix["include"] == [{"preset": "alpha", "backends": [], "tests": 3, "backend": "local"}]
    text = bannou_pytester.run("--bannou-plan").stdout.str()
    assert "1. alpha on local (1 node, 3 tests)" in text
    assert "tests needing no environment, left in place: 1" in text
    result = bannou_pytester.run()
    result.assert_outcomes(passed=4)
    row = next(line for line in result.outlines if line.startswith("alpha "))
    assert re.split(r"\s{2,}", row)[4:8] == ["3", "0", "0", "0"]  # passed failed skipped errors
