"""``bannou-env update`` / ``rollback`` on an environment left running by ``bannou-env deploy``
(real processes; a preset without infrastructure, so no broker has to start)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pytest_bannou.cli.live_cmd import parse_change
from pytest_bannou.environment.live import ChangeError, load_history
from pytest_bannou.environment.runs import run_directory
from tests.support.kept_cli import check_in_place, kept_split_run, replica_ids


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_bannou.cli", *args], capture_output=True, text=True, timeout=180
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def urls(output: str) -> dict[str, str]:
    return dict(re.findall(r"^\s+(\S+): (http://\S+)$", output, re.MULTILINE))


@pytest.fixture
def kept_run(presets_dir: Path):
    out = cli("deploy", "plain", "--presets-dir", str(presets_dir), "--ready-timeout", "60").stdout
    run_id = re.search(r"run id: (\S+)", out).group(1)
    yield run_id, out
    cli("clean", "--run-id", run_id, "--backend", "local", check=False)
    assert not run_directory(run_id).exists()


def test_update_and_rollback_a_kept_run(kept_run):
    run_id, out = kept_run
    assert urls(out)["bannou-main"]
    updated = cli("update", run_id, "add-node:bannou-auth=auth,account", "scale:bannou-main=2")
    assert "configuration version 2" in updated.stdout
    auth_url = urls(updated.stdout)["bannou-auth"]
    assert httpx.get(auth_url + "/health", timeout=5).json()["appId"] == "bannou-auth"
    history = load_history(run_directory(run_id))
    assert [v for v, _ in history.versions] == [1, 2]
    assert history.versions[-1][1].node("bannou-main").replicas == 2

    env_change = '{"action": "update-env", "nodeName": "bannou-auth", "environment": {"X": "1"}}'
    assert "configuration version 3" in cli("update", run_id, env_change).stdout

    # a rollback is a new version holding the configuration it returned to (bannou's audit trail)
    back = cli("rollback", run_id)
    assert "configuration version 4: the configuration of version 2" in back.stdout
    assert "X" not in load_history(run_directory(run_id)).versions[-1][1].node("bannou-auth").environment
    first = cli("rollback", run_id, "--version", "1").stdout
    assert "configuration version 5: the configuration of version 1" in first
    status = cli("status", "--run-id", run_id).stdout
    assert "bannou-auth" not in urls(status)
    listed = re.findall(r"^\s+([* ])\s+(\d+)  (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)  (.*)$", status, re.MULTILINE)
    assert [(mark, int(v)) for mark, v, _, _ in listed] == [(" ", 1), (" ", 2), (" ", 3), (" ", 4), ("*", 5)]
    what = [w for *_, w in listed]
    assert what[0] == "deploy plain" and "add-node bannou-auth" in what[1] and "scale bannou-main" in what[1]
    assert what[2] == "update-env bannou-auth X=1"
    assert what[3] == "rollback to configuration version 2"
    assert what[4] == "rollback to configuration version 1  (current)"
    history = load_history(run_directory(run_id))
    assert history.detail(5).changed_keys == (
        "nodes.bannou-auth",
        "nodes.bannou-main.replicas",
        "mappings.account",
        "mappings.auth",
    )

    unknown = cli("rollback", run_id, "--version", "9", check=False)
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr
    assert (
        f"environment {run_id!r} has no configuration version 9; versions: 1, 2, 3, 4, 5 (current 5)"
        in unknown.stderr
    )
    bad = cli("rollback", run_id, "--version", "-2", check=False)
    assert bad.returncode == 2 and "'-2' is not a configuration version" in bad.stderr


def test_a_bad_change_leaves_the_run_as_it_was(kept_run):
    run_id, out = kept_run
    before = urls(out)["bannou-main"]
    bad = cli("update", run_id, "scale:bannou-main=2", "remove-node:ghost", check=False)
    assert bad.returncode == 1
    assert "change 2 of 2 (remove-node ghost): preset 'plain' has no node 'ghost'" in bad.stderr
    assert "nothing was applied" in bad.stderr and "Traceback" not in bad.stderr
    assert httpx.get(before + "/health", timeout=5).status_code == 200  # same process, same port
    assert [v for v, _ in load_history(run_directory(run_id)).versions] == [1]
    nothing = cli("rollback", run_id, check=False)
    assert nothing.returncode == 1 and "nothing to roll back" in nothing.stderr


def test_a_change_that_fails_to_deploy_leaves_the_previous_version_running(kept_run):
    run_id, _ = kept_run
    change = "update-env:bannou-main:BANNOU_REFERENCE_EXIT_CODE=3"
    bad = cli("update", run_id, change, "--ready-timeout", "60", check=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "failed and was undone (configuration version 1 again)" in bad.stderr
    assert "exited with code 3" in bad.stderr
    url = re.search(r"bannou-main: (http://\S+)", cli("status", "--run-id", run_id).stdout).group(1)
    assert httpx.get(url + "/health", timeout=5).status_code == 200
    history = load_history(run_directory(run_id))
    assert [v for v, _ in history.versions] == [1]
    assert "BANNOU_REFERENCE_EXIT_CODE" not in history.versions[-1][1].node("bannou-main").environment


def test_update_of_an_unknown_run():
    proc = cli("update", "bannou-00000000", "scale:x=1", check=False)
    assert proc.returncode == 1 and "no environment 'bannou-00000000'" in proc.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("scale:main=3", {"action": "scale", "nodeName": "main", "replicas": 3}),
        ("remove-node:x", {"action": "remove-node", "nodeName": "x"}),
        (
            "move-service:a=auth,chat",
            {"action": "move-service", "nodeName": "a", "services": ["auth", "chat"]},
        ),
        ("add-node:n", {"action": "add-node", "nodeConfig": {"name": "n", "services": []}}),
        (
            "update-env:*:A=1,B=2",
            {"action": "update-env", "nodeName": None, "environment": {"A": "1", "B": "2"}},
        ),
        (
            '{"action": "scale", "nodeName": "m", "replicas": 1}',
            {"action": "scale", "nodeName": "m", "replicas": 1},
        ),
    ],
)
def test_change_arguments(text, expected):
    assert parse_change(text) == expected


@pytest.mark.parametrize(
    "text", ["scale:main=two", "warp:x", "update-env:main", "{not json", "move-service:a="]
)
def test_bad_change_arguments(text):
    with pytest.raises(ChangeError):
        parse_change(text)


def local_env(run_id: str, pid: str) -> dict[str, str]:
    """The environment of a local replica's process."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def test_update_and_rollback_change_a_kept_run_in_place(tmp_path):
    """Only the changed node is restarted: the other keeps its process and port (issue 15)."""
    with kept_split_run(tmp_path, "local") as run_id:
        times = check_in_place(run_id, local_env)
    print(f"local: update {times['update']:.2f} s, rollback {times['rollback']:.2f} s")


def test_a_kept_run_with_infrastructure_is_changed_in_place(infra_servers, presets_dir):
    """Redis and RabbitMQ (redis-server overwrites its environment with its title, so it is
    recognised by its start time) and the untouched node keep their processes; the changed node
    gets the next service mappings version."""
    out = cli("deploy", "msg-split", "--presets-dir", str(presets_dir), "--ready-timeout", "120").stdout
    run_id = re.search(r"run id: (\S+)", out).group(1)
    try:
        before = replica_ids(run_id)
        version = httpx.get(urls(out)["bannou-auth"] + "/health", timeout=5).json()["mappingsVersion"]
        updated = cli("update", run_id, "update-env:bannou-auth:IN_PLACE=yes", "--ready-timeout", "120")
        after = replica_ids(run_id)
        assert {n: after[n] for n in ("redis", "rabbitmq", "bannou-main")} == {
            n: before[n] for n in ("redis", "rabbitmq", "bannou-main")
        }
        assert after["bannou-auth"] != before["bannou-auth"] and urls(updated.stdout) == urls(out)
        assert local_env(run_id, after["bannou-auth"])["IN_PLACE"] == "yes"
        health = httpx.get(urls(out)["bannou-auth"] + "/health", timeout=5).json()
        assert health["mappingsVersion"] > version
    finally:
        cli("clean", "--run-id", run_id, "--backend", "local", check=False)
