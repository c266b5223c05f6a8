"""The reference tester end to end: real node (or contract-breaking server) processes, the
reference tester run through ``run_tester``, its output read back by the parsers."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from pytest_bannou.reference.tester import WEBSOCKET_CASE
from pytest_bannou.testers import get_parser, runner
from pytest_bannou.testers.edge_tester import not_run_name
from pytest_bannou.testers.http_tester import not_started_name
from pytest_bannou.testers.model import INCOMPLETE_CASE, SETUP_CASE, TIMEOUT_CASE
from pytest_bannou.topology import model as topology

MODULE = ("python", "-m", "pytest_bannou.reference.tester", "--format")


def make_spec(fmt: str, *, env: dict[str, str] | None = None, timeout: float = 120) -> topology.TesterSpec:
    return topology.TesterSpec(
        name=fmt, command=(*MODULE, fmt), format=fmt, environment=env or {}, timeout=timeout
    )


def outcomes(run):
    return [(c.name, c.outcome) for c in run.cases]


def test_http_format_against_a_real_reference_node(start_node, tmp_path: Path):
    node = start_node(["auth", "account", "game-session"])
    run = runner.run_tester(
        make_spec("http-tester"), environment=runner.tester_environment(node.url), workdir=tmp_path
    )
    names = dict(outcomes(run))
    assert run.exit_code == 0 and run.ok, run.raw_tail
    assert names["Health"] == "passed"
    for s in ("auth", "account", "game-session"):
        assert names[f"Routing.{s}"] == "passed"
    # a known service the node does not list: 404 from this node
    unlisted = [n for n in names if n.startswith("Routing.Unlisted.")]
    assert len(unlisted) == 1 and names[unlisted[0]] == "passed"
    assert "answered 404" in run.case(unlisted[0]).message
    assert all(c.duration is not None for c in run.cases)  # from the runner's timestamps
    assert run.warnings == []  # the summary line agrees with the per-test lines
    assert run.summary["passed"] == len(run.cases) and run.summary["failed"] == 0
    # round trip: the saved log parses to the same results without the runner
    again = get_parser("http-tester").parse(Path(run.summary["log"]).read_text(), 0, tester="http-tester")
    assert outcomes(again) == outcomes(run)


def test_edge_format_expected_services_split_check(start_node, tmp_path: Path):
    node = start_node(["auth", "connect"], app_id="bannou-auth")
    spec = make_spec("edge-tester", env={"BANNOU_EXPECT_SERVICES": "auth,website"})
    run = runner.run_tester(spec, environment=runner.tester_environment(node.url), workdir=tmp_path)
    names = dict(outcomes(run))
    assert run.exit_code == 1 and not run.ok
    assert names["Health Check"] == "passed"
    assert names["Service Routing - auth"] == "passed" and names["Service Routing - connect"] == "passed"
    assert names["Expected Service - auth"] == "passed"
    assert "app id bannou-auth" in run.case("Expected Service - auth").output
    website = run.case("Expected Service - website")
    assert website.outcome == "failed" and "got 404" in website.output
    assert run.summary["failed_tests"] == ["Expected Service - website"]
    assert run.summary["registered"] == run.summary["total"] == len(run.cases)
    assert run.warnings == []


def test_http_format_service_crash_exits_139(start_server, tmp_path: Path):
    # answers the readiness probe, Health and Routing.auth, then dies
    server = start_server("crash-after", "3")
    run = runner.run_tester(
        make_spec("http-tester"), environment=runner.tester_environment(server.url), workdir=tmp_path
    )
    assert run.exit_code == 139
    assert outcomes(run) == [
        ("Health", "passed"),
        ("Routing.auth", "passed"),
        ("Routing.account", "failed"),
        (not_started_name("Routing.account"), "not_run"),
    ]
    crashed = run.case("Routing.account")
    assert "service crash" in crashed.message
    # refused or reset, depending on when the server died relative to the connection
    assert any(e in crashed.message for e in ("ConnectError", "ReadError", "RemoteProtocolError"))


def test_edge_format_stops_before_its_summary_on_service_error(start_server, tmp_path: Path):
    server = start_server("crash-after", "4")
    spec = make_spec("edge-tester", env={"EXIT_ON_SERVICE_ERROR": "true"})
    run = runner.run_tester(spec, environment=runner.tester_environment(server.url), workdir=tmp_path)
    assert run.exit_code == 1
    assert outcomes(run) == [
        ("Health Check", "passed"),
        ("Service Routing - auth", "passed"),
        ("Service Routing - account", "failed"),
        (INCOMPLETE_CASE, "error"),
        (not_run_name(1), "not_run"),
        (not_run_name(2), "not_run"),  # the unlisted-service check, then the WebSocket case
    ]


def test_edge_format_unclear_result(start_server, tmp_path: Path):
    server = start_server("non-json")
    run = runner.run_tester(
        make_spec("edge-tester"), environment=runner.tester_environment(server.url), workdir=tmp_path
    )
    assert run.case("Service Routing - auth").outcome == "unclear"
    assert "non-JSON" in run.case("Service Routing - auth").output
    assert run.unclear == 2 and any("unclear" in w for w in run.warnings)
    # this server speaks no WebSocket: the edge case fails, and with it the run
    assert run.case(WEBSOCKET_CASE).outcome == "failed" and run.exit_code == 1


def test_node_not_answering_is_a_setup_failure(tmp_path: Path):
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        spec = make_spec("http-tester", env={"BANNOU_TESTER_WAIT": "1"})
        run = runner.run_tester(spec, environment=runner.tester_environment(url), workdir=tmp_path)
    assert run.exit_code == 1 and outcomes(run) == [(SETUP_CASE, "error")]
    assert "did not answer /health within 1s" in run.cases[0].output
    assert "⏳ Waiting for bannou" in run.cases[0].output


def test_without_daemon_mode_the_menu_is_a_configuration_error(start_node, tmp_path: Path):
    node = start_node(["auth"])
    # a wrapper that drops DAEMON_MODE: the tester never sees daemon mode and shows its menu
    command = ("env", "-u", "DAEMON_MODE", sys.executable, *MODULE[1:], "edge-tester")
    spec = topology.TesterSpec(name="edge-tester", command=command, format="edge-tester", timeout=12)
    run = runner.run_tester(spec, environment=runner.tester_environment(node.url), workdir=tmp_path)
    assert outcomes(run) == [(TIMEOUT_CASE, "error")]
    assert "daemon mode was not honoured" in run.cases[0].message
    assert "Enter your choice:" in run.cases[0].output


def test_edge_endpoint_from_the_variables_edge_tester_reads():
    from pytest_bannou.reference.tester import endpoint

    assert endpoint("edge-tester", {"OPENRESTY_HOST": "127.0.0.1", "OPENRESTY_PORT": "8080"}) == (
        "http://127.0.0.1:8080"
    )
    assert endpoint("edge-tester", {"OPENRESTY_HOST": "::1"}) == "http://[::1]:80"
    assert endpoint("edge-tester", {"CONNECT_ENDPOINT": "openresty:80/connect"}) == "http://openresty:80"
    assert endpoint("edge-tester", {"CONNECT_ENDPOINT": "wss://edge.example:443/connect"}) == (
        "https://edge.example:443"
    )
    assert (
        endpoint("http-tester", {"BANNOU_HTTP_ENDPOINT": "http://127.0.0.1:5012/"}) == "http://127.0.0.1:5012"
    )
    assert endpoint("http-tester", {}) == "http://localhost:5012"


def test_interactive_menu_runs_the_suite_when_a_choice_is_typed(start_node, tmp_path: Path):
    """Without daemon mode the menu is real: choice 1 runs the tests, 0 exits."""
    import os
    import subprocess

    node = start_node(["auth"])
    env = {k: v for k, v in os.environ.items() if k != "DAEMON_MODE"}
    env["BANNOU_HTTP_ENDPOINT"] = node.url
    proc = subprocess.run(
        [sys.executable, *MODULE[1:], "http-tester"],
        input="1\n0\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("Select a test to run:") == 2
    run = get_parser("http-tester").parse(proc.stdout, None)
    assert run.ok and run.case("Routing.auth").outcome == "passed"
