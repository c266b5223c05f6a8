"""EnvironmentManager and ``bannou-env deploy|status|logs|clean`` against real reference nodes
on the local backend."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import tempfile
import textwrap
from pathlib import Path

import httpx
import pytest

from pytest_bannou.backends.local.backend import LocalBackend
from pytest_bannou.cli import main as cli_main
from pytest_bannou.environment.manager import EnvironmentManager, resolve_backend
from pytest_bannou.environment.runs import make_options, new_run_id, read_run_info, run_directory
from pytest_bannou.errors import BackendUnavailable, DeployError, NodeNotReady
from pytest_bannou.preset import PresetLibrary

PRESETS = {
    "one": """
        name: one
        topology:
          nodes:
            - name: main
              appId: bannou
        """,
    "two": """
        name: two
        topology:
          nodes:
            - name: main
              appId: bannou
            - name: authn
              services: [auth]
        """,
    "crash": """
        name: crash
        topology:
          nodes:
            - name: main
              appId: bannou
              environment: {BANNOU_REFERENCE_EXIT_CODE: "4"}
        """,
}


@pytest.fixture
def library(tmp_path: Path) -> PresetLibrary:
    d = tmp_path / "presets"
    d.mkdir()
    for name, text in PRESETS.items():
        (d / f"{name}.yaml").write_text(textwrap.dedent(text))
    return PresetLibrary(dirs=[d], include_builtin=False)


@pytest.fixture
def events() -> list[str]:
    return []


@pytest.fixture
def manager(events: list[str]):
    m = EnvironmentManager(
        "local",
        make_options(ready_timeout=30),
        progress=lambda text, done: events.append(("done " if done else "start ") + text),
        on_ready=lambda env: events.append(f"ready {env.key}"),
        before_teardown=lambda env: events.append(f"before_teardown {env.key}"),
    )
    yield m
    m.teardown()
    shutil.rmtree(m.options.workdir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _pids(env) -> list[int]:
    return [int(s.id) for s in env.status()]


def test_run_id_format_and_ci_job_suffix():
    assert re.fullmatch(r"bannou-[0-9a-f]{8}", new_run_id({}))
    assert new_run_id({}) != new_run_id({})
    assert re.fullmatch(
        r"bannou-[0-9a-f]{8}-123-build-x", new_run_id({"GITHUB_RUN_ID": "123", "GITHUB_JOB": "build_x"})
    )
    assert new_run_id({"CI_JOB_ID": "77"}).endswith("-77")


def test_run_directory_is_per_user_under_tempdir():
    d = run_directory("bannou-0000abcd")
    assert d == Path(tempfile.gettempdir()) / f"pytest-bannou-{os.getuid()}" / "bannou-0000abcd"
    assert make_options("bannou-0000abcd").workdir == d


def test_resolve_backend():
    assert resolve_backend("local") is LocalBackend
    assert resolve_backend("auto") is LocalBackend
    with pytest.raises(BackendUnavailable, match="unknown backend 'nope'"):
        resolve_backend("nope")


def test_deploy_transition_and_teardown(manager, library, events):
    one = manager.activate("one", library.resolve("one"))
    assert manager.activate("one", library.resolve("one")) is one  # already current: nothing to do
    assert httpx.get(one.url() + "/health", timeout=5).json()["appId"] == "bannou"
    first = _pids(one)
    info = read_run_info(manager.options.workdir)
    assert info["environment"] == "one" and info["urls"]["main"] == one.url("main")

    two = manager.activate("two", library.resolve("two"))
    assert not one.active and two.active
    with pytest.raises(DeployError, match="no longer deployed"):
        one.url()
    assert _pids(two)[0] == first[0]  # main kept
    assert httpx.get(two.url("auth") + "/health", timeout=5).json()["appId"] == "authn"
    two.restart("authn")
    assert httpx.get(two.url("auth") + "/health", timeout=5).status_code == 200
    all_pids = _pids(two) + first

    assert manager.records["one"].activations == 1
    assert manager.records["two"].transitions == 1
    assert manager.records["two"].ready_time is not None
    manager.teardown()
    assert manager.records["two"].node_restarts == 1
    assert manager.records["one"].node_restarts == 0
    assert not any(_alive(p) for p in all_pids)
    assert read_run_info(manager.options.workdir) is None
    assert events == [
        "start deploying one on local: 1 node",
        events[1],
        "ready one",
        "start transition to two: start authn",
        events[4],
        "ready two",
        "before_teardown two",
        "start teardown two",
        events[8],
    ]
    assert events[1].startswith("done ready in ")


def test_full_transition_redeploys(library, events):
    m = EnvironmentManager(
        "local", make_options(ready_timeout=30), transition="full", progress=lambda t, d: events.append(t)
    )
    try:
        one = m.activate("one", library.resolve("one"))
        first = _pids(one)
        two = m.activate("two", library.resolve("two"))
        assert _pids(two)[0] != first[0]
        assert not _alive(first[0])
        assert "teardown one" in events and "deploying two on local: 2 nodes" in events
    finally:
        m.teardown(remove_workdir=True)
    assert not m.options.workdir.exists()


def test_failed_deploy_is_torn_down_remembered_and_others_still_run(manager, library):
    with pytest.raises(NodeNotReady) as first:
        manager.activate("crash", library.resolve("crash"))
    assert "node 'main'" in first.value.message and "4" in first.value.message
    assert manager.current is None
    with pytest.raises(NodeNotReady) as again:
        manager.activate("crash", library.resolve("crash"))
    assert again.value is first.value  # remembered: not deployed a second time
    assert manager.records["crash"].activations == 0
    assert manager.records["crash"].error == first.value.message
    one = manager.activate("one", library.resolve("one"))
    assert httpx.get(one.url() + "/health", timeout=5).status_code == 200


def test_keep_leaves_the_environment_for_clean(manager, library):
    env = manager.activate("two", library.resolve("two"))
    pids = _pids(env)
    assert manager.teardown(keep=True) is env
    assert manager.teardown() is None  # idempotent: the kept environment stays
    try:
        assert all(_alive(p) for p in pids)
        assert read_run_info(manager.options.workdir)["kept"] is True
    finally:
        removed = LocalBackend.clean(manager.run_id, manager.options)
    assert any("stopped node authn" in line for line in removed)
    assert not any(_alive(p) for p in pids)


def test_sigterm_becomes_keyboard_interrupt_and_handlers_are_restored(manager, library):
    before = signal.getsignal(signal.SIGTERM)
    manager.prepare()
    assert signal.getsignal(signal.SIGTERM) == manager._on_signal
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        os.kill(os.getpid(), signal.SIGTERM)  # Python runs the handler right after this call
    manager.teardown()
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_signal_ignored_at_start_stays_ignored(manager, library):
    """``nohup pytest ...`` ignores SIGHUP: a hang-up must not end the run (nor a SIGTERM the
    caller chose to ignore); the handlers are installed for the others only."""
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        manager.prepare()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == manager._on_signal
        os.kill(os.getpid(), signal.SIGHUP)  # nothing happens
        manager.teardown()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


def test_managers_torn_down_in_any_order_leave_the_handlers_from_before():
    """A session with two backends: the second manager installs after the first but the
    session tears its own (the first) down first; no finished manager's handler may stay
    installed (a later SIGTERM would raise in code after the session)."""
    from pytest_bannou.environment.signals import SignalGuard

    class Guard(SignalGuard):
        def __init__(self) -> None:
            self._old_handlers, self._interrupted, self._tearing_down = {}, None, False

    before, interrupt = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    first, second = Guard(), Guard()
    try:
        first.install_signals()
        second.install_signals()
        assert signal.getsignal(signal.SIGTERM) == second._on_signal
        for guard, then in ((first, second._on_signal), (second, before)):
            guard.shield_signals()
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            guard.restore_signals()
            assert signal.getsignal(signal.SIGTERM) == then
        assert signal.getsignal(signal.SIGINT) == interrupt
    finally:
        for guard in (second, first):
            guard.restore_signals()
        signal.signal(signal.SIGTERM, before)


def test_a_signal_while_teardown_holds_the_lock_does_not_lose_the_teardown(manager, library):
    """A SIGTERM delivered while teardown holds the manager's lock, before it shields itself
    from signals, used to raise out of the teardown after it had marked itself done: nothing
    was torn down then or later (issue 12, "the suite itself under load")."""
    env = manager.activate("two", library.resolve("two"))
    pids = _pids(env)
    shield = manager.shield_signals

    def signal_first() -> None:
        assert manager._lock._is_owned()  # the teardown holds the lock now
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs as soon as this call returns
        shield()

    manager.shield_signals = signal_first
    try:
        with contextlib.suppress(KeyboardInterrupt):
            manager.teardown()
        manager.teardown()  # what the interrupt path calls next (session end, exit)
        assert [p for p in pids if _alive(p)] == []
    finally:
        LocalBackend.clean(manager.run_id, manager.options)


def test_a_signal_while_activation_holds_the_lock_tears_down_in_order(manager, library, events):
    """SIGTERM in the middle of a deploy (the manager's lock held): the handler only raises,
    the half-started environment is torn down, then the session's teardown runs."""
    manager.prepare()

    def progress(text: str, done: bool) -> None:
        events.append(text)
        if text.startswith("deploying"):
            os.kill(os.getpid(), signal.SIGTERM)

    manager._progress = progress
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        manager.activate("two", library.resolve("two"))
    assert manager.current is None and "two" not in manager.failures
    assert manager.teardown() is None
    assert signal.getsignal(signal.SIGTERM) is not manager._on_signal  # restored
    assert LocalBackend.clean(manager.run_id, manager.options) == []  # nothing left to remove


def test_unavailable_backend_is_remembered(library):
    m = EnvironmentManager("nope", make_options())
    with pytest.raises(BackendUnavailable):
        m.activate("one", library.resolve("one"))
    with pytest.raises(BackendUnavailable):
        m.prepare()
    m.teardown()


def test_cli_deploy_status_logs_clean(library, capsys):
    presets = str(library.directories[0])
    assert cli_main(["deploy", "two", "--presets-dir", presets, "--env", "EXTRA=1"]) == 0
    out = capsys.readouterr().out
    assert "deploying two on local: 2 nodes ... ready in" in out
    run_id = re.search(r"run id: (bannou-\S+)", out).group(1)
    urls = dict(re.findall(r"^  (\w+): (http://\S+)$", out, re.M))
    assert set(urls) == {"main", "authn"}
    assert f"remove: bannou-env clean --run-id {run_id} --backend local" in out
    info = read_run_info(run_directory(run_id))
    state_pids = [
        int(p)
        for p in re.findall(r'"pid": (\d+)', (run_directory(run_id) / "local" / "state.json").read_text())
    ]
    try:
        assert httpx.get(urls["authn"] + "/health", timeout=5).json()["appId"] == "authn"
        assert info["kept"] is True
        assert cli_main(["status", "--run-id", run_id]) == 0
        out = capsys.readouterr().out
        assert f"{run_id}: two on local (kept)" in out and "(health 200)" in out
        assert cli_main(["logs", run_id, "authn", "--tail", "5"]) == 0
        assert "GET /health" in capsys.readouterr().out
    finally:
        assert cli_main(["clean", "--run-id", run_id]) == 0
    out = capsys.readouterr().out
    assert "stopped node main" in out and "stopped node authn" in out
    assert not any(_alive(p) for p in state_pids)
    assert cli_main(["status", "--run-id", run_id]) == 1
    assert "no environments" in capsys.readouterr().out


def test_cli_deploy_unknown_preset_is_one_message(library, capsys):
    assert cli_main(["deploy", "nosuch", "--presets-dir", str(library.directories[0])]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bannou-env: unknown preset 'nosuch'")


# --- names: a node, an app id, or a service bannou knows; anything else is an error (issue 14) ----


@pytest.fixture
def builtin() -> PresetLibrary:
    return PresetLibrary(dirs=[], include_builtin=True)


def test_unknown_names_are_errors_and_act_on_no_node(manager, builtin):
    env = manager.activate("split-auth", builtin.resolve("split-auth"))
    before = _pids(env)
    main_log = env.logs("bannou-main")
    calls = {
        "restart": lambda: env.restart("bannou-ath"),
        "scale": lambda: env.scale("bannou-ath", 2),
        "logs": lambda: env.logs("nosuchnode"),
        "url": lambda: env.url("nosuchservice"),
        "endpoint": lambda: env.endpoint("nosuchservice"),
        "should_restart": lambda: env.should_restart("nosuchnode"),
    }
    for what, call in calls.items():
        with pytest.raises(DeployError) as exc:
            call()
        message = exc.value.message
        assert "preset 'split-auth': no node hosts" in message, what
        assert "(not a node, app id or bannou service" in message, what
        assert "nodes: bannou-main, bannou-auth" in message, what
        assert "account (bannou-auth), auth (bannou-auth)" in message, what
        assert "every other bannou service goes to bannou-main" in message, what
    with pytest.raises(DeployError, match="did you mean 'bannou-auth'"):
        env.restart("bannou-ath")
    assert _pids(env) == before  # nothing restarted, nothing scaled
    assert len(env.status()) == 2 and env.topology.node("bannou-main").replicas == 1
    assert env.logs("bannou-main").startswith(main_log[:20])
    # what bannou routes still resolves: nodes, app ids, hosted services, other bannou services
    assert env.url("auth") == env.url("bannou-auth") == env.url("account")
    assert env.url("bannou") == env.url("bannou-main") == env.url("character") == env.url()


def test_url_of_a_service_on_monolith_is_the_main_node(manager, builtin):
    env = manager.activate("monolith", builtin.resolve("monolith"))
    assert env.node_for("auth") == env.node_for("game-session") == env.main_node == "bannou"
    assert env.url("auth") == env.url()
    with pytest.raises(DeployError, match=r"no node hosts 'nosuchservice' \(not a node, app id or bannou"):
        env.url("nosuchservice")


def test_node_for_without_a_default_node_uses_the_first_bannou_node(builtin):
    topology = builtin.resolve("orchestrator")
    assert topology.node_for("auth").name == topology.bannou_nodes[0].name
    with pytest.raises(KeyError, match="nosuch"):
        topology.node_for("nosuch")


def test_cli_logs_of_an_unknown_node_is_an_error(builtin, capsys):
    assert cli_main(["deploy", "split-auth"]) == 0
    run_id = re.search(r"run id: (bannou-\S+)", capsys.readouterr().out).group(1)
    try:
        assert cli_main(["logs", run_id, "nosuchnode"]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith(
            f"bannou-env: run {run_id}: preset 'split-auth': no node hosts 'nosuchnode'"
        )
        assert "nodes: bannou-main, bannou-auth" in captured.err
        assert cli_main(["logs", run_id, "bannou-auth"]) == 0
        assert "GET /health" in capsys.readouterr().out
        assert cli_main(["logs", run_id, "auth", "--tail", "3"]) == 0  # a service: the node hosting it
        assert "GET /health" in capsys.readouterr().out
    finally:
        assert cli_main(["clean", "--run-id", run_id]) == 0
    capsys.readouterr()
