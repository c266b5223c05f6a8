"""A rendered Compose file run by hand as the README says (``up -d --wait``, ``port``), then
removed with the ``bannou-env clean --run-id`` its first lines name: ``render`` gives every file a
run id of its own (so two hand runs do not share a project) unless ``--run-id`` names one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from pytest_bannou.backends.base import LABEL_RUN_ID
from pytest_bannou.backends.docker.compose import compose_command
from pytest_bannou.cli import main
from tests.support.docker_helpers import RUN_IDS

pytestmark = pytest.mark.usefixtures("local_images")


def render(tmp_path: Path, name: str, *argv: str) -> tuple[Path, str]:
    out = tmp_path / name
    assert main(["render", "monolith", "--backend", "compose", "-o", str(out), *argv]) == 0
    text = out.read_text()
    run_id = re.search(r"^# run id (bannou-[0-9a-f]{8})\b", text, re.M)
    assert run_id, text[:600]
    RUN_IDS.add(run_id.group(1))
    return out, run_id.group(1)


def containers(run_id: str) -> list[str]:
    ps = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={LABEL_RUN_ID}={run_id}"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return ps.stdout.split()


def test_each_rendered_file_has_its_own_run_id_and_says_how_to_remove_it(tmp_path: Path) -> None:
    first, rid1 = render(tmp_path, "a.yaml")
    second, rid2 = render(tmp_path, "b.yaml")
    assert rid1 != rid2
    # the project names follow the run ids: two hand runs are two projects
    assert rid1 in yaml.safe_load(first.read_text())["name"]
    assert rid2 in yaml.safe_load(second.read_text())["name"]
    assert f"bannou-env clean --run-id {rid1}" in first.read_text()
    assert f"-f {first} up -d --wait" in first.read_text()
    _given, rid = render(tmp_path, "c.yaml", "--run-id", "bannou-0123abcd")
    assert rid == "bannou-0123abcd"


def test_render_refuses_a_run_id_clean_would_refuse(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["render", "monolith", "--run-id", "manual"])
    assert info.value.code == 2
    assert "'manual' is not a run id" in capsys.readouterr().err


def test_a_hand_run_file_runs_and_is_removed_by_clean_run_id(tmp_path: Path) -> None:
    path, run_id = render(tmp_path, "hand.yaml")
    compose = [*compose_command().argv, "-f", str(path)]
    try:
        subprocess.run([*compose, "up", "-d", "--wait"], check=True, capture_output=True, timeout=300)
        port = subprocess.run(
            [*compose, "port", "bannou", "80"], check=True, capture_output=True, text=True, timeout=60
        ).stdout.strip()  # 127.0.0.1:PORT
        assert httpx.get(f"http://{port}/health", timeout=10).status_code == 200
        assert containers(run_id)
        clean = subprocess.run(
            [sys.executable, "-m", "pytest_bannou.cli", "clean", "--run-id", run_id, "--backend", "compose"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert containers(run_id) == []
    finally:
        subprocess.run([*compose, "down", "-v"], capture_output=True, timeout=300)
