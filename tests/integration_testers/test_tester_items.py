"""Testers run from pytest on the local backend: per-case results, outcomes, options, faults."""

from __future__ import annotations

import json
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_bannou.backends.docker import engine as _docker
from tests.support.bannou_pytester import BannouPytester
from tests.support.testers import DATA, preset_yaml

USES_ENV = """
    import pytest

    @pytest.mark.preset("{preset}")
    def test_health(bannou_http):
        assert bannou_http.get("/health").status_code == 200
"""


def replay(
    bannou_pytester: BannouPytester, name: str, log: str, exit_code: int, fmt: str, timeout: str = "30s"
) -> None:
    """A preset whose tester prints a saved transcript and exits with ``exit_code``."""
    transcript = bannou_pytester.pytester.path / log
    shutil.copy(DATA / log, transcript)
    code = f"import sys; sys.stdout.write(open({str(transcript)!r}, encoding='utf-8').read()); "
    bannou_pytester.preset(
        name,
        preset_yaml(
            name,
            f"""
            testers:
              - name: replay
                command: [python, -c, "{code}sys.exit({exit_code})"]
                format: {fmt}
                timeout: {timeout}
            """,
        ),
    )


def results(directory: Path) -> dict:
    return json.loads((directory / "results.json").read_text())


def test_test_http_whole_path_with_report(bannou_pytester: BannouPytester) -> None:
    bannou_pytester.pytester.makepyfile(test_http=USES_ENV.format(preset="test-http"))
    report = bannou_pytester.pytester.path / "report"
    junit = bannou_pytester.pytester.path / "pytest-junit.xml"
    result = bannou_pytester.run_subprocess(
        "--bannou-preset=test-http", f"--bannou-report={report}", f"--junitxml={junit}", "-v"
    )
    outcomes = result.parseoutcomes()
    assert result.ret == 0, result.stdout.str()
    data = results(report)
    cases = [t for t in data["tests"] if t["kind"] == "tester"]
    # the summary counts the pytest test, the tester item and every case
    assert outcomes == {"passed": 2 + len(cases)}
    assert len(cases) > 5
    names = {t["nodeid"] for t in cases}
    assert "tester::http-tester::Health[test-http]" in names
    assert all(t["outcome"] == "passed" and t["preset"] == "test-http" for t in cases)
    assert all(t["tester"] == "http-tester" and t["duration"] is not None for t in cases)
    result.stdout.fnmatch_lines(["tester::http-tester::Health[[]test-http[]] PASSED*"])
    # results.json: run, backend, preset record with durations, nodes and the tester in its timeline
    assert data["backend"] == "local"
    (preset,) = data["presets"]
    assert preset["env_key"] == "test-http" and preset["nodes"] == ["bannou"]
    assert preset["deploy_s"] is not None and preset["ready_s"] is not None
    assert preset["teardown_s"] is not None
    events = [e["event"] for e in preset["timeline"]]
    assert {"deploy", "ready", "tests", "tester:http-tester", "teardown"} <= set(events)
    pytest_tests = {t["nodeid"]: t for t in data["tests"] if t["kind"] == "pytest"}
    assert pytest_tests["test_http.py::test_health"]["outcome"] == "passed"
    assert pytest_tests["tester::http-tester[test-http]"]["outcome"] == "passed"
    # our junit.xml: one testcase per case, preset and backend as properties
    root = ET.parse(report / "junit.xml").getroot()
    testcases = root.iter("testcase")
    by_name = {tc.get("name"): tc for tc in testcases}
    assert "tester::http-tester::Health[test-http]" in by_name
    props = {
        p.get("name"): p.get("value")
        for p in by_name["tester::http-tester::Health[test-http]"].iter("property")
    }
    assert props["preset"] == "test-http" and props["backend"] == "local"
    assert (report / "report.html").read_text().count("Health") >= 1
    # pytest's own --junitxml has the cases too
    pj = ET.parse(junit).getroot()
    assert any(
        tc.get("name") == "Health[test-http]" and tc.get("classname") == "tester.http-tester"
        for tc in pj.iter("testcase")
    )


def test_test_edge_testers_only(bannou_pytester: BannouPytester) -> None:
    bannou_pytester.pytester.makepyfile(test_edge=USES_ENV.format(preset="test-edge"))
    report = bannou_pytester.pytester.path / "out"
    result = bannou_pytester.run_subprocess(
        "--bannou-preset=test-edge", "--bannou-testers-only", f"--bannou-report={report}"
    )
    assert result.ret == 0, result.stdout.str()
    outcomes = result.parseoutcomes()
    data = results(report)
    cases = [t for t in data["tests"] if t["kind"] == "tester"]
    assert outcomes == {"passed": 1 + len(cases), "deselected": 1}
    assert "tester::edge-tester::Health Check[test-edge]" in {t["nodeid"] for t in cases}
    assert not [t for t in data["tests"] if t["nodeid"].startswith("test_edge.py")]


def test_case_outcomes_crash_fail_and_not_run(bannou_pytester: BannouPytester) -> None:
    replay(bannou_pytester, "crashy", "http_crash139.log", 139, "http-tester")
    report = bannou_pytester.pytester.path / "rep"
    result = bannou_pytester.run_subprocess("--bannou-preset=crashy", f"--bannou-report={report}", "-rA")
    assert result.ret == 1
    # Auth.LoginFlow passed, Behavior.CompileAbml failed, the rest not run (skipped), the item failed
    result.assert_outcomes(passed=1, failed=2, skipped=1)
    out = result.stdout.str()
    assert "FAILED tester::replay::Behavior.CompileAbml[crashy]" in out
    assert "Connection refused (bannou-test:80)" in out  # the case's own output is its failure text
    assert "not run:" in out
    assert "FAILED tester::replay[crashy]" in out
    by_id = {t["nodeid"]: t for t in results(report)["tests"]}
    assert by_id["tester::replay::Behavior.CompileAbml[crashy]"]["outcome"] == "failed"
    assert "Connection refused" in by_id["tester::replay::Behavior.CompileAbml[crashy]"]["longrepr_summary"]
    assert by_id["tester::replay::Auth.LoginFlow[crashy]"]["outcome"] == "passed"
    not_run = [t for t in by_id.values() if t["outcome"] == "not_run"]
    assert len(not_run) == 1 and not_run[0]["kind"] == "tester"


HOSTILE = (
    "Running in daemon mode - executing tests sequentially with fail-fast on service crashes...\n"
    "Running test: Evil\x07Name\n"
    "\x1b]0;retitled\x07boom: bell \x07 back \x08 reset \x1bc form \x0c cr \r tail \udcff\n"
    "\u274c Test Evil\x07Name failed: clear \x1b[2J\x1bc screen\n"
    "All tests completed in daemon mode. Passed: 0, Failed: 1\n"
)


def test_control_characters_from_a_tester_are_escaped(bannou_pytester: BannouPytester) -> None:
    log = bannou_pytester.pytester.path / "hostile.log"
    log.write_bytes(HOSTILE.encode("utf-8", "surrogateescape"))
    code = f"import sys; sys.stdout.buffer.write(open({str(log)!r}, 'rb').read()); "
    bannou_pytester.preset(
        "hostile",
        preset_yaml(
            "hostile",
            f"""
            testers:
              - name: replay
                command: [python, -c, "{code}sys.exit(1)"]
                format: http-tester
            """,
        ),
    )
    report = bannou_pytester.pytester.path / "rep"
    result = bannou_pytester.run_subprocess(
        "--bannou-preset=hostile", "--bannou-testers-only", f"--bannou-report={report}", "-rA"
    )
    out = result.stdout.str()
    assert result.ret == 1, out
    for raw in ("\x07", "\x08", "\x0c", "\x1b", "\r"):
        assert raw not in out, repr(raw)
    assert "FAILED tester::replay::Evil\\x07Name[hostile]" in out
    assert "bell \\x07 back \\x08 reset \\x1bc form \\x0c cr \\x0d tail \ufffd" in out
    assert "retitled" not in out  # an OSC sequence is dropped, as the line cleaner always did
    by_id = {t["nodeid"]: t for t in results(report)["tests"]}
    case = by_id["tester::replay::Evil\\x07Name[hostile]"]
    assert case["outcome"] == "failed" and "clear \\x1bc screen" in case["longrepr_summary"]


def test_unclear_passes_with_a_visible_warning(bannou_pytester: BannouPytester) -> None:
    replay(bannou_pytester, "shrug", "edge_unclear.log", 0, "edge-tester")
    report = bannou_pytester.pytester.path / "rep"
    result = bannou_pytester.run_subprocess("--bannou-preset=shrug", f"--bannou-report={report}")
    assert result.ret == 0
    result.assert_outcomes(passed=3, warnings=1)
    result.stdout.fnmatch_lines(["*warnings summary*", "*tester::replay*Meta Endpoints*unclear*"])
    by_id = {t["nodeid"]: t for t in results(report)["tests"]}
    unclear = by_id["tester::replay::Meta Endpoints[shrug]"]
    assert unclear["outcome"] == "unclear" and unclear["warnings"]


def test_timeout_is_an_error_not_a_hang(bannou_pytester: BannouPytester) -> None:
    bannou_pytester.preset(
        "sleepy",
        preset_yaml(
            "sleepy",
            """
            testers:
              - name: sleeper
                command: [python, -c, "import time; print('waiting', flush=True); time.sleep(120)"]
                format: http-tester
                timeout: 1s
            """,
        ),
    )
    result = bannou_pytester.run_subprocess("--bannou-preset=sleepy", "-rA", timeout=60)
    assert result.ret == 1
    result.assert_outcomes(failed=1, errors=1)
    result.stdout.fnmatch_lines(["*did not finish within 1 s and was killed*"])
    result.stdout.fnmatch_lines(["ERROR tester::sleeper::(timeout)[[]sleepy[]]*"])


def test_stdin_waiting_tester_is_a_configuration_error(bannou_pytester: BannouPytester) -> None:
    shutil.copy(DATA / "http_menu.log", bannou_pytester.pytester.path / "menu.log")
    menu = bannou_pytester.script(
        "menu.py",
        f"""
        import sys, time
        sys.stdout.write(open({str(bannou_pytester.pytester.path / "menu.log")!r}, encoding="utf-8").read())
        sys.stdout.flush()
        sys.stdin.read()  # stdin is closed for testers: this returns at once...
        time.sleep(120)  # ...so wait like a menu that never gets its answer
        """,
    )
    bannou_pytester.preset(
        "menu",
        preset_yaml(
            "menu",
            f"""
            testers:
              - name: menu
                command: [python, {str(menu)!r}]
                format: http-tester
                timeout: 1s
            """,
        ),
    )
    result = bannou_pytester.run_subprocess("--bannou-preset=menu", "-rA", timeout=60)
    assert result.ret == 1
    out = result.stdout.str()
    assert "did not finish within 1 s and was killed" in out
    assert "DAEMON_MODE" in out  # the menu hint: a configuration error, not a slow test


def test_garbage_output_is_a_clear_error(bannou_pytester: BannouPytester) -> None:
    noise = bannou_pytester.script(
        "noise.py",
        """
        import sys
        sys.stdout.buffer.write(bytes(range(256)) * 50 + b"\\nzzz \\xff\\xfe not a test line\\n")
        """,
    )
    bannou_pytester.preset(
        "garbage",
        preset_yaml(
            "garbage",
            f"""
            testers:
              - name: noise
                command: [python, {str(noise)!r}]
                format: http-tester
            """,
        ),
    )
    result = bannou_pytester.run_subprocess("--bannou-preset=garbage", "-rA")
    assert result.ret == 1
    result.assert_outcomes(failed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*tester::noise::(no results)[[]garbage[]]*", "*no http-tester test results*"]
    )


def test_empty_output_is_a_clear_error(bannou_pytester: BannouPytester) -> None:
    bannou_pytester.preset(
        "silent",
        preset_yaml(
            "silent",
            """
            testers:
              - name: mute
                command: [python, -c, "pass"]
                format: edge-tester
            """,
        ),
    )
    result = bannou_pytester.run_subprocess("--bannou-preset=silent", "-rA")
    assert result.ret == 1
    result.assert_outcomes(failed=1, errors=1)
    result.stdout.fnmatch_lines(["*tester::mute::(no results)[[]silent[]]*", "*the tester printed nothing*"])


def test_a_50_mb_log_gives_a_bounded_result(bannou_pytester: BannouPytester) -> None:
    bannou_pytester.preset(
        "loud",
        preset_yaml(
            "loud",
            """
            testers:
              - name: loud
                command: [python, -c, "import sys; sys.stdout.write(('line ' + 'x' * 94 + chr(10)) * 500000)"]
                format: http-tester
            """,
        ),
    )
    report = bannou_pytester.pytester.path / "rep"
    result = bannou_pytester.run_subprocess("--bannou-preset=loud", f"--bannou-report={report}", "-rA")
    assert result.ret == 1
    result.assert_outcomes(failed=1, errors=1)
    result.stdout.fnmatch_lines(["*tester::loud::(no results)[[]loud[]]*"])
    assert len(result.stdout.str()) < 200_000  # the failure text is a tail, not the log
    (case,) = [t for t in results(report)["tests"] if t["kind"] == "tester"]
    assert case["outcome"] == "error" and len(case["longrepr_summary"]) <= 8000


@pytest.mark.skipif(not _docker.engine_availability(), reason="needs a Docker Engine (image testers)")
def test_missing_tester_image_on_local_backend_says_how_to_fix(bannou_pytester: BannouPytester) -> None:
    bannou_pytester.preset(
        "imageonly",
        preset_yaml(
            "imageonly",
            """
            testers:
              - name: upstream
                image: bannou-http-tester:latest
                format: http-tester
            """,
        ),
    )
    result = bannou_pytester.run_subprocess("--bannou-preset=imageonly", "-rA")
    assert result.ret == 1
    result.assert_outcomes(failed=1, errors=1)  # the item, and its one setup error
    result.stdout.fnmatch_lines(["*image bannou-http-tester:latest not found on the Docker Engine*"])


def test_missing_program_is_a_setup_error(bannou_pytester: BannouPytester) -> None:
    bannou_pytester.preset(
        "noprog",
        preset_yaml(
            "noprog",
            """
            testers:
              - name: ghost
                command: [/nonexistent/tester-binary]
                format: exit-code
            """,
        ),
    )
    result = bannou_pytester.run_subprocess("--bannou-preset=noprog", "-rA")
    result.assert_outcomes(failed=1, errors=1)
    result.stdout.fnmatch_lines(["*cannot start tester 'ghost': /nonexistent/tester-binary*"])


def test_unknown_format_names_the_preset_file(bannou_pytester: BannouPytester) -> None:
    path = bannou_pytester.preset(
        "badfmt",
        preset_yaml(
            "badfmt",
            """
            testers:
              - name: t
                command: [python, -c, "pass"]
                format: tap
            """,
        ),
    )
    result = bannou_pytester.run_subprocess("--bannou-preset=badfmt")
    assert result.ret == 4  # usage error at collection, nothing deployed
    assert str(path) in result.stderr.str() + result.stdout.str()
    assert "tap" in result.stderr.str() + result.stdout.str()
    assert "deploying" not in result.stdout.str()


def test_endpoints_and_environment_reach_the_tester(bannou_pytester: BannouPytester) -> None:
    seen_file = bannou_pytester.pytester.path / "seen.json"
    probe = bannou_pytester.script(
        "probe.py",
        f"""
        import json, os
        keys = ["BANNOU_HTTP_ENDPOINT", "OPENRESTY_HOST", "OPENRESTY_PORT", "CONNECT_ENDPOINT",
                "DAEMON_MODE", "FROM_PRESET"]
        with open({str(seen_file)!r}, "w") as f:
            json.dump({{k: os.environ.get(k) for k in keys}}, f)
        """,
    )
    bannou_pytester.preset(
        "probe",
        preset_yaml(
            "probe",
            f"""
            testers:
              - name: probe
                command: [python, {str(probe)!r}]
                format: exit-code
                environment: {{FROM_PRESET: "yes", DAEMON_MODE: "false"}}
            """,
            nodes="""
            nodes:
              - name: main
                appId: bannou
              - name: side
                services: [auth]
            """,
        ),
    )
    bannou_pytester.pytester.makepyfile(
        test_probe="""
        import pytest

        @pytest.mark.preset("probe")
        def test_urls(bannou_env):
            print("MAIN-URL", bannou_env.url("main"), "END")
        """
    )
    result = bannou_pytester.run_subprocess("-s", "-rA", "--bannou-testers=auto")
    assert result.ret == 0, result.stdout.str()
    out = result.stdout.str()
    main_url = out[out.index("MAIN-URL ") + 9 : out.index(" END")]
    seen = json.loads(seen_file.read_text())
    assert seen["BANNOU_HTTP_ENDPOINT"] == main_url
    host, port = main_url.split("//")[1].rsplit(":", 1)
    assert (seen["OPENRESTY_HOST"], seen["OPENRESTY_PORT"]) == (host, port)
    assert seen["CONNECT_ENDPOINT"] == f"{host}:{port}/connect"
    assert seen["DAEMON_MODE"] == "true"  # always set, whatever the preset says
    assert seen["FROM_PRESET"] == "yes"


def test_tester_selection_rules(bannou_pytester: BannouPytester, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("one", "two"):
        bannou_pytester.preset(
            name,
            preset_yaml(
                name,
                f"""
                testers:
                  - name: ok
                    command: [python, -c, "print('tester {name}')"]
                    format: exit-code
                """,
            ),
        )
    bannou_pytester.pytester.makepyfile(
        test_sel="""
        import pytest

        @pytest.mark.preset("one")
        def test_one(bannou_env):
            pass

        @pytest.mark.preset("one", environment={"X": "1"})
        def test_one_derived(bannou_env):
            pass

        def test_plain():
            pass
        """
    )
    # auto, no --bannou-preset: presets with selected tests, plain environments only
    auto = bannou_pytester.run_subprocess("--collect-only", "-q")
    assert "tester::ok[one]" in auto.stdout.str()
    assert "tester::ok[two]" not in auto.stdout.str()
    assert "tester::ok[one[env:X=1]]" not in auto.stdout.str()
    # always: derived environments too
    always = bannou_pytester.run_subprocess("--collect-only", "-q", "--bannou-testers=always")
    assert "tester::ok[one[env:X=1]]" in always.stdout.str()
    # --bannou-preset names the presets, tests or not
    named = bannou_pytester.run_subprocess("--collect-only", "-q", "--bannou-preset=two")
    assert "tester::ok[two]" in named.stdout.str() and "tester::ok[one]" not in named.stdout.str()
    never = bannou_pytester.run_subprocess("--collect-only", "-q", "--bannou-testers=never")
    assert "tester::" not in never.stdout.str()
    # the tester runs after the preset's own tests (end of its group in the plan)
    plan = bannou_pytester.run_subprocess("--bannou-plan=json")
    text = plan.stdout.str()
    order = json.JSONDecoder().raw_decode(text, text.index("{"))[0]["order"]
    assert order.index("tester::ok[one]") > order.index("test_sel.py::test_one")
    # the environment-variable twin of --bannou-testers-only
    monkeypatch.setenv("BANNOU_TESTERS_ONLY", "1")
    only = bannou_pytester.run_subprocess("-q")
    assert only.ret == 0, only.stdout.str()
    only.assert_outcomes(passed=2, deselected=3)


def test_xdist_workers_give_one_report(bannou_pytester: BannouPytester) -> None:
    bannou_pytester.pytester.makepyfile(
        test_par="""
        import pytest

        @pytest.mark.preset("test-http")
        @pytest.mark.parametrize("n", range(3))
        def test_http(bannou_http, n):
            assert bannou_http.get("/health").status_code == 200

        @pytest.mark.preset("test-edge")
        @pytest.mark.parametrize("n", range(3))
        def test_edge(bannou_http, n):
            assert bannou_http.get("/health").status_code == 200
        """
    )
    report = bannou_pytester.pytester.path / "xrep"
    result = bannou_pytester.run_subprocess("-n", "2", f"--bannou-report={report}", timeout=180)
    assert result.ret == 0, result.stdout.str()
    assert sorted(p.name for p in report.iterdir()) == ["junit.xml", "report.html", "results.json"]
    data = results(report)
    ids = {t["nodeid"] for t in data["tests"]}
    assert {f"test_par.py::test_http[{n}]" for n in range(3)} <= ids
    assert {f"test_par.py::test_edge[{n}]" for n in range(3)} <= ids
    assert "tester::http-tester::Health[test-http]" in ids
    assert "tester::edge-tester::Health Check[test-edge]" in ids
    assert {p["env_key"] for p in data["presets"]} >= {"test-http", "test-edge"}
    assert len({t["nodeid"] for t in data["tests"]}) == len(data["tests"])  # nothing twice
    assert sys.executable  # the inner run used this interpreter (runpytest_subprocess)
