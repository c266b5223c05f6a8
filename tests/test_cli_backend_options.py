"""``bannou-env --backend-option KEY=VALUE``: pytest's ``--bannou-backend-option`` for the command
line, with the same environment-variable and ini twins and the same checks (one parser for both),
accepted wherever ``--backend`` is; a kept run remembers the options it was deployed with."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_bannou.backends.base import Endpoint
from pytest_bannou.cli import main as cli_main
from pytest_bannou.cli._args import backend_options, run_backend_options
from pytest_bannou.cli._output import node_addresses
from pytest_bannou.cli.project import Project
from pytest_bannou.environment.kept import recorded_options
from pytest_bannou.environment.runs import RUN_INFO, read_run_info, run_directory
from pytest_bannou.topology.model import Node, Topology
from tests.support.runs_root import private_runs_root

RUN_ID = "bannou-0000abcd"  # well formed, never deployed


@pytest.fixture(autouse=True)
def own_runs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private_runs_root(tmp_path, monkeypatch, "BANNOU_BACKEND_OPTION")
    monkeypatch.chdir(tmp_path)  # no project configuration around


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = cli_main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


COMMANDS = [
    ["deploy", "monolith"],
    ["logs", RUN_ID, "bannou"],
    ["clean", "--run-id", RUN_ID, "--backend", "local"],
    ["render", "monolith", "--backend", "compose"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_backend_option_is_taken_and_checked_as_pytest_checks_it(command, capsys):
    code, _out, err = run([*command, "--backend-option", "grace_period=abc"], capsys)
    assert code == 2, err
    assert "--backend-option grace_period='abc': expected seconds >= 0" in err
    code, _out, err = run([*command, "--backend-option", "novalue"], capsys)
    assert code == 2, err
    assert (
        "--backend-option 'novalue' is not KEY=VALUE; e.g. --backend-option kubernetes_service_type=NodePort"
        in err
    )


def test_the_environment_variable_twin_is_read(monkeypatch, capsys):
    monkeypatch.setenv("BANNOU_BACKEND_OPTION", "x=1,grace_period=later")
    code, _out, err = run(["deploy", "monolith"], capsys)
    assert code == 1, err
    assert "environment variable BANNOU_BACKEND_OPTION grace_period='later': expected seconds >= 0" in err


def test_flag_then_environment_then_ini_as_in_pytest(tmp_path, monkeypatch):
    ini = tmp_path / "pytest.ini"
    project = Project(tmp_path, ini, {"bannou_backend_option": "grace_period=1m 'x=a b'"})
    assert backend_options([], project) == {"grace_period": "60.0", "x": "a b"}
    monkeypatch.setenv(
        "BANNOU_BACKEND_OPTION", "kubernetes_service_type=NodePort,kubernetes_node_address=10.1.2.3"
    )
    expected = {"kubernetes_service_type": "NodePort", "kubernetes_node_address": "10.1.2.3"}
    assert backend_options([], project) == expected
    assert backend_options(["a=1,b=2", "c=3"], project) == {"a": "1", "b": "2", "c": "3"}
    bad = Project(tmp_path, ini, {"bannou_backend_option": "stop_grace=-1"})
    monkeypatch.delenv("BANNOU_BACKEND_OPTION")
    with pytest.raises(
        Exception,
        match=r"ini key bannou_backend_option in \S+pytest.ini stop_grace='-1': expected seconds >= 0",
    ):
        backend_options([], bad)


def test_a_kept_run_remembers_its_backend_options(tmp_path, capsys):
    code, out, err = run(
        [
            "deploy",
            "monolith",
            "--backend",
            "local",
            "--backend-option",
            "grace_period=2,api_token=hunter2,x_url=https://u:hunter2@h/",
        ],
        capsys,
    )
    assert code == 0, out + err
    run_id = re.search(r"run id: (\S+)", out).group(1)
    try:
        info = read_run_info(run_directory(run_id))
        assert info is not None and info["backend_options"] == {"grace_period": "2"}  # no secret kept
        assert "hunter2" not in (run_directory(run_id) / RUN_INFO).read_text()
        assert recorded_options(info) == {"grace_period": "2"}
        # what update/rollback/status/logs take it over with; a given option wins
        assert recorded_options(info, {"grace_period": "0", "x": "y"}) == {"grace_period": "0", "x": "y"}
        code, out, err = run(["status", "--run-id", run_id], capsys)
        assert code == 0 and re.search(r"bannou: http://\S+ \(health 200\)", out), out + err
    finally:
        code, out, err = run(["clean", "--run-id", run_id, "--backend", "local"], capsys)
        assert code == 0, out + err


REDIS_PRESET = """
name: two-and-redis
description: a node with two replicas and Redis
topology:
  nodes:
    - name: bannou
      replicas: 2
  infrastructure:
    redis: {enabled: true, version: "7"}
"""


def test_deploy_lists_every_replica_and_infrastructure_with_its_own_scheme(tmp_path, capsys):
    (tmp_path / "two-and-redis.yaml").write_text(REDIS_PRESET)
    argv = ["deploy", "two-and-redis", "--presets-dir", str(tmp_path), "--backend", "local"]
    code, out, err = run(argv, capsys)
    assert code == 0, out + err
    run_id = re.search(r"run id: (\S+)", out).group(1)
    try:
        assert re.search(r"^  redis: redis://127\.0\.0\.1:\d+$", out, re.M), out
        assert re.search(r"^  bannou: http://127\.0\.0\.1:\d+$", out, re.M), out
        assert re.search(r"^  bannou\[1\]: http://127\.0\.0\.1:\d+$", out, re.M), out
        code, out, err = run(["status", "--run-id", run_id], capsys)
        assert re.search(r"^  bannou\[1\]: http://\S+ \(health 200\)$", out, re.M), out
        assert re.search(r"^  redis: redis://\S+$", out, re.M), out
        assert re.search(r"^    redis \(redis\) ok ", out, re.M), out
    finally:
        run(["clean", "--run-id", run_id, "--backend", "local"], capsys)


def test_a_recorded_run_keeps_its_options_over_this_shells_defaults(tmp_path, monkeypatch):
    # deployed with a context, cleaned from a shell whose variable names another: the run is in
    # the recorded one (the default must not send clean to the wrong cluster)
    info = {"backend_options": {"kubernetes_context": "dev", "grace_period": "2"}}
    monkeypatch.setenv("BANNOU_BACKEND_OPTION", "kubernetes_context=ci,kubeconfig=/k")
    assert run_backend_options(info, []) == {
        "kubernetes_context": "dev",
        "grace_period": "2",
        "kubeconfig": "/k",  # a key the run did not record: the default fills it in
    }
    explicit = run_backend_options(info, ["kubernetes_context=prod"])  # a flag given now wins
    assert explicit == {"kubernetes_context": "prod", "grace_period": "2"}
    monkeypatch.delenv("BANNOU_BACKEND_OPTION")
    (tmp_path / "pytest.ini").write_text("[pytest\nbroken")  # cleaning up does not need the ini
    assert run_backend_options(info, []) == {"kubernetes_context": "dev", "grace_period": "2"}


def test_an_engine_error_while_listing_addresses_is_a_line_not_a_traceback():
    # kubernetes' endpoint() asks the API and opens a port-forward: its own errors (ApiException,
    # OSError) came through as a traceback after a change that had succeeded
    class Flaky:
        def endpoint(self, node: str, replica: int = 0):
            if replica == 1:
                raise OSError("port-forward: connection reset")
            if node == "gone":
                raise KeyError(node)
            return Endpoint("127.0.0.1", 8080 + replica)

    topology = Topology(
        preset="p",
        nodes=(
            Node(name="web", app_id="web", ports=(80,), replicas=2),
            Node(name="gone", app_id="gone", ports=(80,)),
        ),
    )
    lines = [(label, text) for label, _node, text in node_addresses(Flaky(), topology)]  # type: ignore[arg-type]
    assert lines == [
        ("web", "http://127.0.0.1:8080"),
        ("web[1]", "(unavailable: OSError: port-forward: connection reset)"),
    ]  # a replica the backend does not have is left out
