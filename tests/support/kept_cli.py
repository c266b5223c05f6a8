"""``bannou-env update``/``rollback`` of a kept run, in place, through the real command line on
any backend: the node that does not change keeps its process or container and its port, the
changed one runs with the new environment, the run's record follows (``status``, ``logs``, the
next change). The backend's test module gives how a replica's environment is read (``env_of``)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from pytest_bannou.environment.live import load_history
from pytest_bannou.environment.runs import read_run_info, run_directory

#: a two-node preset without infrastructure (so no broker has to start)
SPLIT = """
name: kept-split
description: two nodes, no infrastructure
topology:
  nodes:
    - name: bannou-main
      appId: bannou
    - name: bannou-auth
      services: [account, auth]
"""

#: (run id, replica id as the run record lists it) -> that replica's environment
EnvOf = Callable[[str, str], dict[str, str]]


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_bannou.cli", *args], capture_output=True, text=True, timeout=300
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def urls(output: str) -> dict[str, str]:
    return dict(re.findall(r"^\s+(\S+): (http://\S+)", output, re.MULTILINE))


def replica_ids(run_id: str) -> dict[str, str]:
    """Node -> the id of its replica 0, as the run record (written after every change) has it."""
    info = read_run_info(run_directory(run_id)) or {}
    replicas = (info.get("attach") or {}).get("replicas") or []
    return {r["node"]: str(r["id"]) for r in replicas if r.get("replica") == 0}


@contextmanager
def kept_split_run(tmp_path: Path, backend: str) -> Iterator[str]:
    """A kept two-node run deployed by ``bannou-env deploy``, removed afterwards."""
    (tmp_path / "kept-split.yaml").write_text(SPLIT)
    out = cli("deploy", "kept-split", "--presets-dir", str(tmp_path), "--backend", backend).stdout
    run_id = re.search(r"run id: (\S+)", out).group(1)
    try:
        yield run_id
    finally:
        cli("clean", "--run-id", run_id, "--backend", backend, check=False)


def timed(*args: str, check: bool = True) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    proc = cli(*args, check=check)
    return proc, time.monotonic() - start


def check_in_place(run_id: str, env_of: EnvOf) -> dict[str, float]:
    """Update, roll back, remove and add a node, and a change that fails, on a kept run; the
    untouched node keeps its replica and URL throughout. Returns how long update/rollback took."""
    ids, before = replica_ids(run_id), urls(cli("status", "--run-id", run_id).stdout)
    main = (ids["bannou-main"], before["bannou-main"])

    def untouched() -> None:
        now = urls(cli("status", "--run-id", run_id).stdout)
        assert (replica_ids(run_id)["bannou-main"], now["bannou-main"]) == main
        assert httpx.get(main[1] + "/health", timeout=10).status_code == 200

    updated, update_time = timed("update", run_id, "update-env:bannou-auth:IN_PLACE=yes")
    assert "configuration version 2" in updated.stdout
    assert urls(updated.stdout)["bannou-main"] == main[1]
    untouched()
    auth = replica_ids(run_id)["bannou-auth"]
    assert auth != ids["bannou-auth"]
    assert env_of(run_id, auth).get("IN_PLACE") == "yes"
    recorded = load_history(run_directory(run_id)).versions[-1][1]
    assert recorded.node("bannou-auth").environment["IN_PLACE"] == "yes"

    back, rollback_time = timed("rollback", run_id)
    # a rollback is a new version with the configuration of the one it goes back to
    assert "configuration version 3: the configuration of version 1" in back.stdout
    untouched()
    assert "IN_PLACE" not in env_of(run_id, replica_ids(run_id)["bannou-auth"])

    cli("update", run_id, "remove-node:bannou-auth", "add-node:bannou-extra=auth")
    untouched()
    status = cli("status", "--run-id", run_id).stdout
    # (the configuration versions below the nodes still name bannou-auth: its history)
    assert not re.search(r"^  bannou-auth: ", status, re.M), status
    assert re.search(r"bannou-extra: http://\S+ \(health 200\)", status)
    assert "listening" in cli("logs", run_id, "bannou-extra").stdout

    extra = replica_ids(run_id)["bannou-extra"]
    bad = cli("update", run_id, "update-env:bannou-extra:BANNOU_REFERENCE_EXIT_CODE=3", check=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr, bad.stderr
    assert "failed and was undone (configuration version 4 again)" in bad.stderr, bad.stderr
    untouched()
    assert "BANNOU_REFERENCE_EXIT_CODE" not in env_of(run_id, replica_ids(run_id)["bannou-extra"])
    assert replica_ids(run_id).keys() == {"bannou-main", "bannou-extra"} and extra
    assert re.search(r"bannou-extra: http://\S+ \(health 200\)", cli("status", "--run-id", run_id).stdout)
    return {"update": update_time, "rollback": rollback_time}
