"""``run_tester``: real tester processes (small Python programs), their environment, deadline,
process-group kill, log capture and parsing."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from pytest_bannou.errors import BannouError
from pytest_bannou.testers import runner
from pytest_bannou.testers.model import SETUP_CASE, TIMEOUT_CASE
from pytest_bannou.topology import model as topology

# module-qualified: pytest would collect names starting with "test" / "Test"
run_tester = runner.run_tester
JUNIT_ENV = runner.JUNIT_ENV

PY = sys.executable


def spec(code: str, **kw) -> topology.TesterSpec:
    return topology.TesterSpec(name=kw.pop("name", "t"), command=(PY, "-c", code), **kw)


def test_tester_environment_from_an_endpoint():
    env = runner.tester_environment("http://127.0.0.1:8123", extra={"RABBITMQ_HOST": "127.0.0.1"})
    assert env == {
        "BANNOU_HTTP_ENDPOINT": "http://127.0.0.1:8123",
        "OPENRESTY_HOST": "127.0.0.1",
        "OPENRESTY_PORT": "8123",
        "CONNECT_ENDPOINT": "127.0.0.1:8123/connect",
        "RABBITMQ_HOST": "127.0.0.1",
    }
    v6 = runner.tester_environment("http://[::1]:80/", connect_endpoint="ingress:80/connect")
    assert v6["BANNOU_HTTP_ENDPOINT"] == "http://[::1]:80" and v6["OPENRESTY_HOST"] == "::1"
    assert v6["CONNECT_ENDPOINT"] == "ingress:80/connect"
    with pytest.raises(BannouError, match="has no host"):
        runner.tester_environment("http://:80")


def test_environment_layers_daemon_mode_and_closed_stdin(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PB_SESSION_VAR", "session")
    code = (
        "import os, sys\n"
        "for k in ('DAEMON_MODE', 'PB_SESSION_VAR', 'PB_SPEC', 'BANNOU_HTTP_ENDPOINT'):\n"
        "    print(f'{k}={os.environ.get(k)}')\n"
        "print('stdin=' + repr(sys.stdin.read()))\n"
    )
    s = spec(
        code,
        format="exit-code",
        environment={"PB_SPEC": "spec", "BANNOU_HTTP_ENDPOINT": "from-spec", "DAEMON_MODE": "false"},
    )
    run = run_tester(s, environment=runner.tester_environment("http://127.0.0.1:9"), workdir=tmp_path)
    assert [(c.name, c.outcome) for c in run.cases] == [("t", "passed")]
    out = run.cases[0].output
    assert "DAEMON_MODE=true" in out  # always, whatever the preset says
    assert "PB_SESSION_VAR=session" in out and "PB_SPEC=spec" in out
    assert "BANNOU_HTTP_ENDPOINT=http://127.0.0.1:9" in out  # the endpoint wins over the spec
    assert "stdin=''" in out
    log = Path(run.summary["log"])
    assert log.parent == tmp_path and "PB_SPEC=spec" in log.read_text()
    assert run.summary["timed_out"] is False and run.summary["command"][0] == PY


def test_http_format_with_durations_from_the_timestamped_log(tmp_path: Path):
    code = (
        "import time\n"
        "print('Running in daemon mode - executing tests sequentially"
        " with fail-fast on service crashes...')\n"
        "print('Running test: Slow', flush=True); time.sleep(0.3)\n"
        "print('✅ Test Slow completed successfully: done', flush=True)\n"
        "print('Running test: Bad', flush=True)\n"
        "print('❌ Test Bad failed: nope', flush=True)\n"
        "print('All tests completed in daemon mode. Passed: 1, Failed: 1')\n"
        "print('❌ 1 test(s) failed - returning exit code 1')\n"
        "raise SystemExit(1)\n"
    )
    run = run_tester(spec(code, format="http-tester", name="http"), environment={}, workdir=tmp_path)
    assert [(c.name, c.outcome) for c in run.cases] == [("Slow", "passed"), ("Bad", "failed")]
    assert run.exit_code == 1 and run.tester == "http"
    # stamped when read: a loaded machine may read both lines late, so only the kind is certain
    slow = run.case("Slow").duration
    assert slow is not None and 0 <= slow < 120
    assert run.warnings == []


def test_deadline_kills_the_process_group_and_reports_a_timeout(tmp_path: Path):
    pidfile = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
        "print('Running test: Hangs', flush=True)\n"
        "print('  waiting for something that never comes', flush=True)\n"
        "time.sleep(600)\n"
    )
    s = spec(code, format="http-tester", timeout=600)
    # 8 s: time to start, spawn the child and print on a loaded machine
    run = run_tester(s, environment={}, workdir=tmp_path, deadline_s=8)
    assert [(c.name, c.outcome) for c in run.cases] == [("Hangs", "failed"), (TIMEOUT_CASE, "error")]
    assert run.case("Hangs").message == "run ended before a verdict"
    timeout = run.case(TIMEOUT_CASE)
    assert "did not finish within 8 s and was killed" in timeout.message
    assert "daemon mode" not in timeout.message  # not a menu: just slow
    assert run.summary["timed_out"] is True and run.exit_code is None
    # the grandchild the tester started is gone too (killed with the process group)
    child = int(pidfile.read_text())
    assert _gone(child), f"child {child} of the killed tester is still running"


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def test_menu_waiting_on_stdin_is_a_configuration_error(tmp_path: Path):
    code = (
        "import time\n"
        "print('Bannou HTTP Tester'); print('Select a test to run:')\n"
        "print('  1. Run all tests'); print('  0. Exit')\n"
        "print('Enter your choice: ', end='', flush=True)\n"
        "time.sleep(600)\n"
    )
    run = run_tester(spec(code, format="http-tester", timeout=1.0), environment={}, workdir=tmp_path)
    assert [(c.name, c.outcome) for c in run.cases] == [(TIMEOUT_CASE, "error")]
    msg = run.cases[0].message
    assert "was killed" in msg and "daemon mode was not honoured" in msg and "configuration error" in msg
    assert "Enter your choice:" in run.cases[0].output  # the prompt without newline was kept


def test_junit_format_reads_the_file_the_tester_writes(tmp_path: Path):
    xml = (
        '<testsuite><testcase classname="c" name="a" time="0.1"/>'
        '<testcase classname="c" name="b"><failure message="x"/></testcase></testsuite>'
    )
    code = (
        f"import os, sys\nopen(sys.argv[1], 'w').write({xml!r})\n"
        f"assert os.environ['{JUNIT_ENV}'] == sys.argv[1]\nraise SystemExit(1)\n"
    )
    s = topology.TesterSpec(name="ju", command=(PY, "-c", code, "{junit}"), format="junit")
    run = run_tester(s, environment={}, workdir=tmp_path)
    assert [(c.name, c.outcome) for c in run.cases] == [("c.a", "passed"), ("c.b", "failed")]
    missing = topology.TesterSpec(name="ju2", command=(PY, "-c", "print('forgot the xml')"), format="junit")
    run2 = run_tester(missing, environment={}, workdir=tmp_path)
    assert [c.outcome for c in run2.cases] == ["error"]
    assert "wrote no JUnit XML" in run2.cases[0].message and "forgot the xml" in run2.cases[0].output


def test_python_in_a_command_means_this_interpreter(tmp_path: Path):
    s = topology.TesterSpec(name="py", command=("python", "-c", "import sys; print(sys.executable)"))
    run = run_tester(s, environment={}, workdir=tmp_path)
    assert run.ok and run.cases[0].output.strip() == sys.executable


def test_program_that_does_not_exist(tmp_path: Path):
    s = topology.TesterSpec(
        name="ghost", command=("/nonexistent/tester-binary", "--daemon"), format="http-tester"
    )
    run = run_tester(s, environment={}, workdir=tmp_path)
    assert [(c.name, c.outcome) for c in run.cases] == [(SETUP_CASE, "error")]
    assert "cannot start tester 'ghost'" in run.cases[0].message and "command:" in run.cases[0].message


def test_user_mistakes_raise(tmp_path: Path):
    with pytest.raises(BannouError, match="unknown tester format 'tap'"):
        run_tester(
            topology.TesterSpec(name="x", command=("true",), format="tap"), environment={}, workdir=tmp_path
        )
    with pytest.raises(BannouError, match="needs a container backend"):
        run_tester(
            topology.TesterSpec(name="x", image="bannou-http-tester:latest"), environment={}, workdir=tmp_path
        )
    assert not any(tmp_path.iterdir())  # nothing started


def test_output_without_trailing_newline_and_binary_garbage(tmp_path: Path):
    code = "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe garbage \\x00 no newline')\n"
    run = run_tester(spec(code, format="edge-tester"), environment={}, workdir=tmp_path)
    assert [c.outcome for c in run.cases] == ["error"]
    assert "garbage" in run.cases[0].output and "\ufffd" in run.cases[0].output
    assert os.path.getsize(run.summary["log"]) > 0


def test_timeout_between_tests_reports_the_timeout_once(tmp_path: Path):
    code = (
        "import time\n"
        "print('   Total tests registered: 2')\n"
        "print('📋 Running: A'); print('✅ Test A PASSED', flush=True)\n"
        "time.sleep(600)\n"
    )  # 6 s: enough for the interpreter to print case A first, even on a loaded machine
    run = run_tester(spec(code, format="edge-tester", timeout=6.0), environment={}, workdir=tmp_path)
    assert [(c.name, c.outcome) for c in run.cases] == [
        ("A", "passed"),
        ("(not run #1)", "not_run"),
        (TIMEOUT_CASE, "error"),
    ]


def test_timeout_of_an_exit_code_tester_is_its_one_result(tmp_path: Path):
    """The timeout is the result: no second "exit code unknown" error beside it."""
    run = run_tester(
        spec("import time; time.sleep(600)", format="exit-code", timeout=1.0),
        environment={},
        workdir=tmp_path,
    )
    assert [(c.name, c.outcome) for c in run.cases] == [(TIMEOUT_CASE, "error")]
