"""``bannou-env`` as a command-line tool (issue 16 point 3), run as a user runs it: a subprocess.

``--version``; exit 2 for a wrong command line, 1 for a wrong thing asked about; quiet when its
reader stops reading; ``--presets-dir`` everywhere; the project's pytest configuration read as
pytest reads it; ``clean`` and ``status`` tell this project's runs from other checkouts'.
Every test has its own runs root (``TMPDIR``): the machine's shared one is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

DEAD_PID = 999_999_999  # above any pid_max: never a live process
PRESET = "topology:\n  nodes:\n    - {name: main, appId: bannou}\n"


def bannou_env() -> list[str]:
    """The installed console script when there is one, else ``python -m pytest_bannou.cli``."""
    script = Path(sys.executable).parent / "bannou-env"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "pytest_bannou.cli"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of the CLI: a private TMPDIR (runs root), no BANNOU_* settings."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = {k: v for k, v in os.environ.items() if not k.startswith("BANNOU_")}
    out.pop("XDG_RUNTIME_DIR", None)
    out["TMPDIR"] = str(tmp)
    return out


def cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [*bannou_env(), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def project(root: Path, config: str, text: str, presets: str = "my-presets") -> Path:
    """A project at ``root`` with one pytest configuration file and one preset ``mine``."""
    (root / presets).mkdir(parents=True)
    (root / presets / "mine.yaml").write_text("description: the project's own\n" + PRESET)
    (root / config).write_text(textwrap.dedent(text).lstrip("\n"))
    return root


# --- --version, exit statuses, a closed pipe ------------------------------------------------------


def test_version(env, tmp_path):
    done = cli(["--version"], env, tmp_path)
    assert done.returncode == 0
    assert done.stdout.strip() == f"bannou-env {metadata.version('pytest-bannou')}"


@pytest.mark.parametrize(
    "argv",
    [
        ["no-such-command"],
        ["presets", "show", "monolith", "--env", "NO_EQUALS_SIGN"],
        ["presets", "show", "monolith", "--replicas", "bannou=many"],
        ["clean", "--all-stale", "--run-id", "bannou-0000abcd"],
        ["logs", "not-a-run-id", "main"],
    ],
)
def test_a_wrong_command_line_exits_2(argv, env, tmp_path):
    done = cli(argv, env, tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip()


def test_a_wrong_thing_asked_about_exits_1(env, tmp_path):
    done = cli(["presets", "show", "no-such-preset"], env, tmp_path)
    assert done.returncode == 1 and "unknown preset 'no-such-preset'" in done.stderr


def test_a_reader_that_stops_reading_gets_no_traceback(env, tmp_path):
    """The reader is gone before the CLI writes: it says nothing and exits 141 (128 + SIGPIPE)."""
    proc = subprocess.Popen(
        [*bannou_env(), "presets", "list", "--json"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # before the interpreter has even started
    _, err = proc.communicate(timeout=120)
    assert err.decode() == ""
    assert proc.returncode == 141


def test_piped_into_head(env, tmp_path):
    cmd = " ".join(bannou_env()) + " presets list --json | head -1; echo status=${PIPESTATUS[0]} >&2"
    done = subprocess.run(
        ["bash", "-c", cmd], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.stdout == "[\n"
    assert done.stderr.strip() in ("status=0", "status=141"), done.stderr  # 0: written before head left


# --- --presets-dir ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["presets", "list"],
        ["presets", "show", "mine"],
        ["presets", "validate", "mine"],
        ["render", "mine", "--backend", "compose"],
    ],
)
@pytest.mark.parametrize("flag", ["--presets-dir", "--dir"])
def test_presets_dir_is_one_flag_everywhere(argv, flag, env, tmp_path):
    d = tmp_path / "presets"
    d.mkdir()
    (d / "mine.yaml").write_text(PRESET)
    done = cli([*argv, flag, str(d)], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "mine" in done.stdout or "main" in done.stdout


@pytest.mark.parametrize("command", [["presets", "list"], ["render"], ["deploy"]])
def test_help_shows_presets_dir_only(command, env, tmp_path):
    out = cli([*command, "--help"], env, tmp_path).stdout
    assert "--presets-dir DIR" in out and "--dir" not in out


# --- the project's pytest configuration ------------------------------------------------------------

CONFIGS = {
    "pytest.ini": "[pytest]\nbannou_presets_dir = my-presets\n",
    "pyproject.toml": '[tool.pytest.ini_options]\nbannou_presets_dir = "my-presets"\n',
    "pyproject-native.toml": '[tool.pytest]\nbannou_presets_dir = ["my-presets"]\n',
    "tox.ini": "[tox]\nenvlist = py\n[pytest]\nbannou_presets_dir = my-presets\n",
    "setup.cfg": "[metadata]\nname = x\n[tool:pytest]\nbannou_presets_dir = my-presets\n",
}


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_presets_list_in_a_project_shows_its_presets(config, env, tmp_path):
    name = "pyproject.toml" if config.startswith("pyproject") else config
    root = project(tmp_path / "proj", name, CONFIGS[config])
    deeper = root / "tests" / "unit"
    deeper.mkdir(parents=True)
    done = cli(["presets", "list", "--json"], env, deeper)
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert rows["mine"]["source"] == str(root / "my-presets" / "mine.yaml")
    assert "monolith" in rows  # the built-ins after the project's


def test_the_nearest_configuration_wins_as_in_pytest(env, tmp_path):
    outer = project(
        tmp_path / "outer", "pytest.ini", "[pytest]\nbannou_presets_dir = outer-presets\n", "outer-presets"
    )
    inner = project(outer / "inner", "tox.ini", "[pytest]\nbannou_presets_dir = my-presets\n")
    (inner / "sub").mkdir()
    (inner / "sub" / "pyproject.toml").write_text("[project]\nname = 'x'\n")  # no pytest section: passed over
    rows = json.loads(cli(["presets", "list", "--json"], env, inner / "sub").stdout)
    assert {r["name"]: r["source"] for r in rows}["mine"] == str(inner / "my-presets" / "mine.yaml")


def test_env_and_flag_come_before_the_ini(env, tmp_path):
    root = project(tmp_path / "proj", "pytest.ini", "[pytest]\nbannou_presets_dir = my-presets\n")
    other = tmp_path / "other"
    other.mkdir()
    (other / "theirs.yaml").write_text(PRESET)
    names = {
        r["name"]
        for r in json.loads(
            cli(["presets", "list", "--json"], {**env, "BANNOU_PRESETS_DIR": str(other)}, root).stdout
        )
    }
    assert "theirs" in names and "mine" not in names  # the variable replaces the ini, as in the plugin
    names = {
        r["name"]
        for r in json.loads(cli(["presets", "list", "--json", "--presets-dir", str(other)], env, root).stdout)
    }
    assert {"theirs", "mine"} <= names  # the flag comes first, the ini after it


def test_a_missing_ini_presets_dir_names_the_ini_file(env, tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\nbannou_presets_dir = nowhere\n")
    done = cli(["presets", "list"], env, tmp_path)
    assert done.returncode == 1
    assert f"ini key bannou_presets_dir in {tmp_path / 'pytest.ini'}" in done.stderr
    assert "does not exist" in done.stderr


def test_a_broken_configuration_file_is_one_message(env, tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options\n")
    done = cli(["presets", "list"], env, tmp_path)
    assert (
        done.returncode == 1
        and f"cannot read pytest configuration {tmp_path / 'pyproject.toml'}" in done.stderr
    )


# --- clean and status tell projects apart ---------------------------------------------------------


def runs_root(env: dict[str, str]) -> Path:
    root = Path(env["TMPDIR"]) / f"pytest-bannou-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    return root


def record(env: dict[str, str], run_id: str, project_dir: Path | None, **info: object) -> Path:
    d = runs_root(env) / run_id
    d.mkdir(mode=0o700)
    data = {"run_id": run_id, "backend": "local", "environment": run_id[-4:], "owner_pid": DEAD_PID}
    if project_dir is not None:
        data["project"] = str(project_dir)
    (d / "environment.json").write_text(json.dumps({**data, **info}))
    return d


def local_state(env: dict[str, str], run_id: str) -> None:
    """A local backend state file of a dead session that started nothing (what a SIGKILLed
    session leaves): what the sweep finds and ``clean --all-stale`` removes."""
    d = runs_root(env) / "local-state"
    d.mkdir(mode=0o700, exist_ok=True)
    data = {"session": "s", "run_id": run_id, "owner_pid": DEAD_PID, "replicas": {}}
    (d / f"{run_id}.json").write_text(json.dumps(data))


def test_clean_removes_only_this_projects_runs_and_says_what_all_stale_would(env, tmp_path):
    mine = project(tmp_path / "mine", "pytest.ini", "[pytest]\n")
    theirs = project(tmp_path / "theirs", "pytest.ini", "[pytest]\n")
    (mine / "tests").mkdir()
    dead = record(env, "bannou-0000aaaa", mine / "tests")  # pytest run from a subdirectory
    kept = record(env, "bannou-0000cccc", mine, kept=True)
    in_use = record(env, "bannou-0000dddd", mine, owner_pid=os.getpid())
    other = record(env, "bannou-0000bbbb", theirs)
    other_kept = record(env, "bannou-0000eeee", theirs, kept=True)
    unknown = record(env, "bannou-0000ffff", None)
    for run_id in ("bannou-0000bbbb", "bannou-0000eeee", "bannou-0000ffff", "bannou-0000abab"):
        local_state(env, run_id)

    status = cli(["status"], env, mine / "tests").stdout
    lines = {line.split(":")[0]: line for line in status.splitlines() if line.startswith("bannou-")}
    assert lines["bannou-0000bbbb"].endswith(f"[other checkout: {theirs}]")
    assert lines["bannou-0000ffff"].endswith("[project unknown]")
    assert "[" not in lines["bannou-0000aaaa"] and "[" not in lines["bannou-0000dddd"]

    done = cli(["clean", "--backend", "local"], env, mine / "tests")
    assert done.returncode == 0, done.stderr
    assert not dead.exists() and not kept.exists()  # this project's, its session gone (kept too)
    assert in_use.exists() and other.exists() and other_kept.exists() and unknown.exists()
    would = done.stdout.split("`bannou-env clean --all-stale` would also remove:")[1]
    assert f"run bannou-0000bbbb on local (bbbb, other checkout: {theirs})" in would
    assert "run bannou-0000ffff on local (ffff, project unknown)" in would
    assert "run bannou-0000abab on local (no run record)" in would
    assert "bannou-0000eeee" not in would and "bannou-0000dddd" not in would  # kept / in use: spared

    done = cli(["clean", "--backend", "local"], env, mine)
    assert "nothing of this project" in done.stdout and in_use.exists()
    swept = cli(["clean", "--all-stale", "--backend", "local"], env, mine).stdout
    assert not other.exists() and not unknown.exists() and other_kept.exists(), swept
    assert "would also remove" not in cli(["clean", "--backend", "local"], env, mine).stdout


@pytest.mark.timeout(300)
def test_deploy_records_the_project_and_clean_in_it_removes_the_run(env, tmp_path):
    root = project(
        tmp_path / "proj",
        "pytest.ini",
        "[pytest]\nbannou_presets_dir = my-presets\nbannou_backend = local\nbannou_ready_timeout = 120\n",
    )
    (root / "tests").mkdir()
    done = cli(["deploy", "mine"], env, root / "tests", timeout=240)
    assert done.returncode == 0, done.stderr
    run_id = next(line.split()[-1] for line in done.stdout.splitlines() if line.startswith("run id:"))
    workdir = runs_root(env) / run_id
    try:
        info = json.loads((workdir / "environment.json").read_text())
        assert info["project"] == str(root) and info["backend"] == "local" and info["kept"] is True
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        assert f"[other checkout: {root}]" in cli(["status"], env, elsewhere).stdout
        left = cli(["clean", "--backend", "local"], env, elsewhere)
        assert workdir.exists() and "nothing of this project" in left.stdout
        removed = cli(["clean"], env, root)
        assert removed.returncode == 0, removed.stderr
        assert f"run {run_id} (local): " in removed.stdout and not workdir.exists()
    finally:
        if workdir.exists():
            cli(["clean", "--run-id", run_id, "--backend", "local"], env, root)
            shutil.rmtree(workdir, ignore_errors=True)
