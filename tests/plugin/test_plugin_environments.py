"""Fixtures against real reference nodes on the local backend; report sections; failure paths;
--bannou-keep; the plugin's hooks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_bannou.environment.runs import read_run_info, run_directory
from tests.support.bannou_pytester import deploy_lines


def _pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def test_fixtures_route_requests_to_the_hosting_node(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        """
        import httpx
        import pytest

        @pytest.mark.preset("beta")
        def test_routing(bannou_env, bannou_http, bannou_preset):
            assert bannou_preset == "beta" == bannou_env.preset
            assert bannou_env.backend == "local"
            assert bannou_env.nodes == ("main", "authn")
            assert bannou_env.run_id.startswith("bannou-")
            auth = bannou_http("auth")
            assert isinstance(auth, httpx.Client)
            assert auth is bannou_http("auth")
            assert str(auth.base_url).rstrip("/") == bannou_env.url("authn") == bannou_env.url("account")
            assert auth.get("/health").json()["appId"] == "authn"
            assert auth.post("/auth/login", json={}).status_code == 200
            assert auth.post("/game-session/list", json={}).status_code == 404
            # the default client goes to the main node (app id bannou)
            assert bannou_http.get("/health").json()["appId"] == "bannou"
            assert bannou_http.url() == bannou_env.url() == bannou_env.url("main")
            assert bannou_env.endpoint("authn").url() == bannou_env.url("authn")
            assert "POST /auth/login" in bannou_env.logs("authn", tail=5)
            states = {(s.node, s.state) for s in bannou_env.status()}
            assert states == {("main", "running"), ("authn", "running")}

        @pytest.mark.preset("beta")
        def test_restart_and_scale(bannou_env, bannou_http):
            before = {s.node: s.id for s in bannou_env.status()}
            bannou_env.restart("authn", environment={"EXTRA": "1"})
            after = {s.node: s.id for s in bannou_env.status()}
            assert after["authn"] != before["authn"] and after["main"] == before["main"]
            assert bannou_http("auth").get("/health").status_code == 200
            bannou_env.scale("authn", 2)
            assert len([s for s in bannou_env.status() if s.node == "authn"]) == 2
        """
    )
    result = bannou_pytester.run("-v")
    result.assert_outcomes(passed=2)
    assert len(deploy_lines(result)) == 1


def test_transition_restarts_only_changed_nodes(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        PIDS = {}

        @pytest.mark.preset("alpha")
        def test_1(bannou_env):
            PIDS["alpha"] = {s.node: s.id for s in bannou_env.status()}

        @pytest.mark.preset("beta")
        def test_2(bannou_env):
            pids = {s.node: s.id for s in bannou_env.status()}
            assert pids["main"] == PIDS["alpha"]["main"]  # same spec: kept running
            PIDS["beta"] = pids

        @pytest.mark.preset("gamma")
        def test_3(bannou_env):
            pids = {s.node: s.id for s in bannou_env.status()}
            assert pids["main"] != PIDS["beta"]["main"]  # other environment: recreated
            assert set(pids) == {"main"}
        """
    )
    result = bannou_pytester.run("-v", "--bannou-no-batch")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "bannou: deploying alpha on local: 1 node ... ready in * s",
            "bannou: transition to beta: start authn ... ready in * s",
            "bannou: transition to gamma: * ... ready in * s",
            "bannou: teardown gamma ... * s",
        ]
    )
    gamma = next(line for line in deploy_lines(result) if "gamma" in line)
    assert "recreate main" in gamma and "stop authn" in gamma
    result.stdout.fnmatch_lines(
        [
            "*bannou environments*",
            "env * backend * deploy * ready * passed * failed * skipped * errors * transitions * restarts"
            " * tester cases",
            "alpha * local * s * s * 1 * 0 * 0 * 0 * 0 * 0",
            "beta * local * s * s * 1 * 0 * 0 * 0 * 1 * 0",
        ]
    )


def test_full_transition_tears_down_and_redeploys(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.preset("alpha")
        def test_1(bannou_env):
            pass

        @pytest.mark.preset("beta")
        def test_2(bannou_env):
            pass
        """
    )
    result = bannou_pytester.run("--bannou-transition=full", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "bannou: deploying alpha on local: 1 node*",
            "bannou: teardown alpha ... * s",
            "bannou: deploying beta on local: 2 nodes*",
        ]
    )


def test_failing_test_gets_log_and_status_sections(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.preset("beta")
        def test_fails(bannou_http):
            bannou_http("auth").post("/auth/marker-request", json={})
            assert False, "boom"
        """
    )
    result = bannou_pytester.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- bannou logs main -*",
            "*GET /health 200*",
            "*- bannou logs authn -*",
            "*POST /auth/marker-request 200*",
            "*- bannou status -*",
            "environment beta on local (bannou-*)",
            "main[[]0[]]: running (id *",
            "authn[[]0[]]: running (id *",
        ]
    )
    # a failed run keeps its node logs and says where they are
    line = next(x for x in result.outlines if x.startswith("node logs of this run: "))
    workdir = Path(line.split(": ", 1)[1])
    try:
        assert "POST /auth/marker-request" in (workdir / "local" / "authn-0.log").read_text()
    finally:
        shutil.rmtree(workdir)


def test_node_that_exits_errors_its_tests_and_other_presets_still_run(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.preset("broken")
        def test_broken_1(bannou_env):
            pass

        @pytest.mark.preset("broken")
        def test_broken_2(bannou_http):
            pass

        @pytest.mark.preset("alpha")
        def test_alpha(bannou_http):
            assert bannou_http.get("/health").status_code == 200
        """
    )
    result = bannou_pytester.run("--bannou-no-batch", "-rE")
    result.assert_outcomes(passed=1, errors=2)
    out = result.stdout.str()
    # one message: node, reason, its last log lines; no traceback into the plugin
    # the same message for both tests (+ once in the summary table)
    assert out.count("preset 'broken': node 'crasher' on backend local is not ready") == 3
    assert "exit" in out.split("node 'crasher'")[1].splitlines()[0]
    assert "last log lines of crasher" in out
    assert "pytest_bannou/" not in out
    assert len([line for line in deploy_lines(result) if "broken" in line]) == 1  # not retried
    result.stdout.fnmatch_lines(["bannou: deploying broken on local: 1 node ... FAILED (torn down in * s)"])


def test_node_never_ready_errors_after_ready_timeout(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.preset("slow")
        def test_slow(bannou_env):
            pass
        """
    )
    result = bannou_pytester.run("--bannou-ready-timeout=1.5")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*preset 'slow': node 'sleeper' on backend local is not ready*"])
    assert "Traceback" not in result.stdout.str()


def test_unknown_default_preset_is_one_usage_error(bannou_pytester):
    bannou_pytester.pytester.makeini("[pytest]\nbannou_default_preset = nosuch\n")
    bannou_pytester.pytester.makepyfile("def test_env(bannou_env):\n    pass\n")
    result = bannou_pytester.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: test_*::test_env: unknown preset 'nosuch'; known presets: *"])


def test_hooks_are_called(bannou_pytester):
    bannou_pytester.pytester.makeconftest(
        """
        EVENTS = []

        def pytest_bannou_configure_backend(config, options):
            options.extra = {**options.extra, "grace_period": "1"}
            EVENTS.append(("configure", options.run_id.startswith("bannou-")))

        def pytest_bannou_environment_ready(environment):
            EVENTS.append(("ready", environment.key))

        def pytest_bannou_before_teardown(environment):
            EVENTS.append(("before_teardown", environment.key, environment.logs("main") != ""))

        def pytest_unconfigure(config):
            print("EVENTS", EVENTS)
        """
    )
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.preset("alpha")
        def test_1(bannou_env):
            pass

        @pytest.mark.preset("gamma")
        def test_2(bannou_env):
            pass
        """
    )
    result = bannou_pytester.run("-s")
    result.assert_outcomes(passed=2)
    expected = (
        "('configure', True), ('ready', 'alpha'), ('ready', 'gamma'), ('before_teardown', 'gamma', True)"
    )
    result.stdout.fnmatch_lines([f"EVENTS [[]{expected}[]]"])


def test_keep_leaves_the_environment_and_clean_removes_it(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.preset("beta")
        def test_1(bannou_env):
            pass
        """
    )
    result = bannou_pytester.run_subprocess("--bannou-keep")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*bannou environment kept*",
            "environment beta on local is still running (run id bannou-*)",
            "  main: http://127.0.0.1:*",
            "  authn: http://127.0.0.1:*",
            "remove it with: bannou-env clean --run-id bannou-* --backend local",
        ]
    )
    assert "teardown beta" not in result.stdout.str()
    line = next(x for x in result.outlines if x.startswith("remove it with: "))
    run_id = line.split("--run-id ")[1].split()[0]
    state = json.loads((run_directory(run_id) / "local" / "state.json").read_text())
    pids = [r["pid"] for r in state["replicas"]]
    try:
        assert len(_pids_alive(pids)) == 2
        info = read_run_info(run_directory(run_id))
        assert info["kept"] is True and info["environment"] == "beta"
        import httpx

        assert httpx.get(info["urls"]["authn"] + "/health", timeout=5).json()["appId"] == "authn"
        status = subprocess.run(
            [sys.executable, "-m", "pytest_bannou.cli", "status", "--run-id", run_id],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "beta on local (kept)" in status.stdout
        assert "(health 200)" in status.stdout
    finally:
        clean = subprocess.run(
            [sys.executable, "-m", "pytest_bannou.cli", *line.split("bannou-env ")[1].split()],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert clean.returncode == 0, clean.stderr
    assert "stopped node main" in clean.stdout and "stopped node authn" in clean.stdout
    assert _pids_alive(pids) == []
    assert not run_directory(run_id).exists()


def test_teardown_leaves_no_process(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        """
        import json, os, pytest

        @pytest.mark.preset("beta", replicas={"authn": 2})
        def test_1(bannou_env):
            with open("pids.json", "w") as f:
                json.dump({"pids": [int(s.id) for s in bannou_env.status()], "run_id": bannou_env.run_id}, f)
        """
    )
    result = bannou_pytester.run()
    result.assert_outcomes(passed=1)
    data = json.loads((bannou_pytester.pytester.path / "pids.json").read_text())
    pids = data["pids"]
    assert len(pids) == 3
    assert not run_directory(data["run_id"]).exists()  # a clean run leaves no run directory
    assert "node logs of this run" not in result.stdout.str()
    assert _pids_alive(pids) == []
    assert os.getpid() not in pids


def test_ini_local_command_runs_bannou_nodes(bannou_pytester):
    script = bannou_pytester.pytester.makepyfile(
        wrapper="import os, runpy\n"
        "os.environ['BANNOU_APP_ID'] = 'custom'\n"
        "runpy.run_module('pytest_bannou.reference.node', run_name='__main__')\n"
    )
    command = f"{sys.executable} {script}"
    bannou_pytester.pytester.makeini(f"[pytest]\nbannou_local_command = {command}\n")
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.preset("alpha")
        def test_custom(bannou_http):
            assert bannou_http.get("/health").json()["appId"] == "custom"
        """
    )
    bannou_pytester.run().assert_outcomes(passed=1)


def test_progress_lines_hidden_with_qq(bannou_pytester):
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.preset("alpha")
        def test_1(bannou_env):
            pass
        """
    )
    result = bannou_pytester.run("-qq")
    assert result.ret == 0
    assert "bannou:" not in result.stdout.str()
    assert "bannou environments" not in result.stdout.str()
    result = bannou_pytester.run("-q")
    assert len(deploy_lines(result)) == 1


def test_failed_teardown_is_reported_and_fails_the_run(bannou_pytester):
    bannou_pytester.pytester.makeconftest(
        """
        from pytest_bannou.backends.local.backend import LocalBackend
        from pytest_bannou.errors import DeployError

        ORIGINAL = LocalBackend.teardown

        def failing_teardown(self):
            ORIGINAL(self)  # remove the processes, then report a failure like an engine would
            raise DeployError("engine refused to remove network x")

        def pytest_configure(config):
            LocalBackend.teardown = failing_teardown

        def pytest_unconfigure(config):
            LocalBackend.teardown = ORIGINAL
        """
    )
    bannou_pytester.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.preset("alpha")
        def test_1(bannou_env):
            pass
        """
    )
    result = bannou_pytester.run()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "bannou: teardown failed: engine refused to remove network x",
            "bannou: remove what is left with: bannou-env clean --run-id bannou-*",
        ]
    )
    assert "Traceback" not in result.stdout.str()
