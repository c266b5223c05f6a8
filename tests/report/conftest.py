"""Sample reports shaped like what the plugin and the tester parsers produce."""

from __future__ import annotations

import pytest

from pytest_bannou.report import PresetRecord, RunReport, TestRecord, TimelineEvent, tester_nodeid

T0 = 1_790_000_000.0

FAILURE = """def test_auth_login(bannou):
>       assert resp.status_code == 200
E       assert 503 == 200
E        +  where 503 = <Response [503]>.status_code

tests/test_auth.py:12: AssertionError"""


def make_report(
    run_id: str = "run-a1",
    backend: str = "local",
    ci_job: str | None = None,
    presets: tuple[str, ...] = ("monolith", "split-auth"),
    worker: str | None = None,
) -> RunReport:
    """Two environments, pytest tests parametrised by preset plus tester cases, every outcome."""
    records = []
    tests = []
    t = T0
    for i, name in enumerate(presets):
        nodes = ["bannou", "redis", "rabbitmq"] + (["auth"] if "split" in name else [])
        records.append(
            PresetRecord(
                env_key=name,
                preset=name,
                preset_hash=f"{i:02d}" + "ab" * 31,
                backend=backend,
                deploy_s=3.5 + i,
                ready_s=1.25,
                teardown_s=0.75,
                nodes=nodes,
                transitions=["start auth; recreate bannou"] if i else [],
                restarts={"bannou": 1} if i else {},
                timeline=[
                    TimelineEvent("transition" if i else "deploy", t, t + 3.5 + i),
                    TimelineEvent("ready", t + 3.5 + i, t + 4.75 + i),
                    TimelineEvent("tests", t + 4.75 + i, t + 9 + i),
                    TimelineEvent("tester:http-tester", t + 9 + i, t + 12 + i),
                    TimelineEvent("teardown", t + 12 + i, t + 12.75 + i),
                ],
            )
        )
        t += 13 + i
        tests += [
            TestRecord(f"tests/test_auth.py::test_health[{name}]", name, "passed", 0.05),
            TestRecord(
                f"tests/test_auth.py::test_login[{name}]",
                name,
                "failed" if "split" in name else "passed",
                0.4,
                FAILURE if "split" in name else "",
            ),
            TestRecord(
                f"tests/test_auth.py::TestSessions::test_skip[{name}]", name, "skipped", 0.0, "no redis"
            ),
            TestRecord(
                tester_nodeid("http-tester", "Test Account Create", name),
                name,
                "passed",
                0.12,
                "",
                "tester",
                "http-tester",
            ),
            TestRecord(
                tester_nodeid("edge-tester", "Test Meta Endpoints", name),
                name,
                "unclear",
                0.3,
                "",
                "tester",
                "edge-tester",
                ["edge-tester reported 'result unclear'"],
            ),
            TestRecord(
                tester_nodeid("http-tester", "Test Crash Next", name),
                name,
                "not_run" if "split" in name else "passed",
                None,
                "not run: http-tester crashed (exit 139)",
                "tester",
                "http-tester",
            ),
        ]
    tests.append(
        TestRecord("tests/test_plain.py::test_no_env", None, "error", 0.01, "fixture 'db' not found")
    )
    return RunReport(
        run_id=run_id,
        backend=backend,
        started_at=T0 - 1,
        finished_at=t + 1,
        presets=records,
        tests=tests,
        ci_job=ci_job,
        worker=worker,
    )


@pytest.fixture
def sample_report() -> RunReport:
    return make_report()


@pytest.fixture
def report_factory():
    return make_report
