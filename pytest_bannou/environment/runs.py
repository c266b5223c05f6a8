"""Run ids and run directories: what names a session's resources and where its files live.

A run id is a name the plugin made (``RUN_ID_PATTERN``), never a path: every run directory is
an entry directly under the per-user runs root, which is created 0700 and refused when another
user could have written to it. ``environment.json`` (the run info) records what a run deployed
for ``bannou-env status``/``logs``/``clean``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._support.ci import CI_JOBS, ci_job_id
from .._support.files import atomic_write
from .._support.pids import pid_alive
from ..backends.base import BackendOptions
from ..errors import BannouError

DEFAULT_READY_TIMEOUT = 120.0  # seconds a deployment may take to be ready (--bannou-ready-timeout)

# the CI job's variables: one table in _support.ci (BANNOU_CI_JOB_ID, GitHub, GitLab, Buildkite, Jenkins)
CI_JOB_VARS = tuple(row.id_vars for row in CI_JOBS)


# what new_run_id makes, and so the only run ids the CLI takes: a run id names a directory
# under the runs root and labels engine resources, it must never be a path
RUN_ID_PATTERN = re.compile(r"bannou-[0-9a-f]{8}(?:-[a-z0-9-]{1,40})?")
RUN_ID_EXAMPLE = "bannou-1a2b3c4d (or bannou-1a2b3c4d-JOB in CI)"


class RunIdError(BannouError):
    """A run id that is not one the plugin makes, or whose directory leaves the runs root."""


def new_run_id(environ: Mapping[str, str] | None = None) -> str:
    """``bannou-`` + 8 hex chars, + the CI job id when running in CI (so leaks name their job).
    Always matches ``RUN_ID_PATTERN``."""
    environ = os.environ if environ is None else environ
    run_id = f"bannou-{secrets.token_hex(4)}"
    suffix = ci_job_id(environ)
    if suffix:
        safe = "".join(c if c.isascii() and c.isalnum() else "-" for c in suffix.lower())
        safe = safe.strip("-")[:40].strip("-")
        if safe:
            run_id += f"-{safe}"
    return run_id


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is one ``new_run_id`` could have made; ``RunIdError`` otherwise."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise RunIdError(
            f"{run_id!r} is not a run id: run ids look like {RUN_ID_EXAMPLE};"
            " `bannou-env status` lists the runs left running"
        )
    return run_id


def _runs_root_path() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else os.getlogin()
    return Path(tempfile.gettempdir()) / f"pytest-bannou-{uid}"


def runs_root() -> Path:
    """Where every session's run directory lives (per user, so users never collide).

    Created 0700; refused (``BannouError`` saying what to do) when another user owns it or
    others may write to it: state found there is only trusted when this user wrote it."""
    root = _runs_root_path()
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o700)
    _check_private(root)
    return root


def _check_private(root: Path) -> None:
    """Refuse a runs root that is not this user's alone; tighten one of ours to 0700."""
    if not hasattr(os, "getuid"):
        return  # no owners and modes to check (Windows): the per-user temp dir is private
    uid = os.getuid()
    move = "or point TMPDIR at a directory only you can write"
    for st in (os.lstat(root), os.stat(root)):
        if st.st_uid != uid:
            raise BannouError(
                f"runs directory {root} is owned by uid {st.st_uid}, not by you (uid {uid}): another"
                f" user may have put state there; remove it if it is yours to remove, {move}"
            )
    st = os.stat(root)
    if not stat.S_ISDIR(st.st_mode):
        raise BannouError(f"runs directory {root} is not a directory; remove it, {move}")
    if st.st_mode & 0o022:
        raise BannouError(
            f"runs directory {root} is writable by others (mode {stat.S_IMODE(st.st_mode):04o}), so"
            f" what it holds cannot be trusted: run `chmod 700 {root}` (after checking its"
            f" contents), {move}"
        )
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(root, 0o700)


def run_directory(run_id: str) -> Path:
    """The run directory of ``run_id``: directly under the runs root, also after following
    symlinks, or ``RunIdError`` (a run id is a name, never a path out of the runs root)."""
    root = _runs_root_path()
    where = f"the run directory of {run_id!r}"
    try:
        path = root / run_id
        resolved, real_root = path.resolve(), root.resolve()
    except (ValueError, OSError, TypeError) as exc:
        raise RunIdError(f"{where} cannot be used: {exc}") from None
    if not run_id or resolved.parent != real_root or resolved.name != run_id:
        raise RunIdError(
            f"{where} would be {resolved}, outside the runs directory {root} (or not its own"
            f" entry): refused; run ids look like {RUN_ID_EXAMPLE}"
        )
    return path


def run_directories() -> list[Path]:
    """The run directories under the runs root: real directories named like run ids (a symlink
    or a stray file is not a run)."""
    root = runs_root()
    out = []
    for d in sorted(root.iterdir()):
        if RUN_ID_PATTERN.fullmatch(d.name) and not d.is_symlink() and d.is_dir():
            out.append(d)
    return out


def ensure_run_directory(workdir: Path) -> Path:
    """Create ``workdir`` 0700 (checking the runs root first when it lies under it)."""
    root = _runs_root_path()
    if workdir.parent == root:
        runs_root()
    workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if hasattr(os, "getuid") and os.stat(workdir).st_uid == os.getuid():
        os.chmod(workdir, 0o700)
    return workdir


RUN_INFO = "environment.json"


def write_run_info(workdir: Path, info: Mapping[str, Any]) -> None:
    """Record what a run deployed (read by ``bannou-env status``/``logs``); 0600 in a 0700
    directory, as it names the environment."""
    ensure_run_directory(workdir)
    atomic_write(workdir / RUN_INFO, json.dumps(dict(info), indent=2, sort_keys=True))


def current_directory() -> str:
    """The working directory, where a run records its project when it is given none ("" when
    the directory is gone)."""
    try:
        return os.getcwd()
    except OSError:
        return ""


def run_project(info: Mapping[str, Any]) -> Path | None:
    """The project directory a run record names (None: an older or damaged record)."""
    project = info.get("project")
    if not isinstance(project, str) or "\0" in project or not os.path.isabs(project):
        return None
    return Path(project)


def read_run_info(workdir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((workdir / RUN_INFO).read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


# --- in use, and pruning ---------------------------------------------------------------------
# A run directory outlives its session only when something needs it: a kept environment, a run
# whose environment is still recorded as running (the sweep and `bannou-env clean` read that),
# or the node logs of a failed run. The logs are pruned as pytest prunes its basetemp: the
# newest KEEP_FINISHED_RUNS finished runs of this user stay, older ones go.
KEEP_FINISHED_RUNS = 3
IN_USE_PREFIX = "in-use."  # + pid: a live process (a session, an xdist worker) uses the run
OWNER_PID_FILE = "owner.pid"  # environment.sweep's marker of the process owning a shared run
PRUNE_GRACE = 600.0  # seconds: a run touched this recently is never pruned (a session still
# starting, or one of a plugin version that wrote no in-use marker)


def mark_in_use(workdir: Path, pid: int | None = None) -> Path:
    """Mark ``workdir`` as used by ``pid`` (default: this process) for as long as it lives, so
    that another session's pruning leaves it alone."""
    ensure_run_directory(workdir)
    path = workdir / f"{IN_USE_PREFIX}{pid or os.getpid()}"
    path.touch(mode=0o600)
    return path


def in_use(workdir: Path) -> bool:
    """Whether a live process marked ``workdir`` in use (``mark_in_use``, the sweep's owner file
    or the run record's owner)."""
    pids = []
    with contextlib.suppress(OSError):
        for entry in workdir.iterdir():
            if entry.name.startswith(IN_USE_PREFIX) and entry.name[len(IN_USE_PREFIX) :].isdigit():
                pids.append(int(entry.name[len(IN_USE_PREFIX) :]))
    with contextlib.suppress(OSError, ValueError):
        pids.append(int((workdir / OWNER_PID_FILE).read_text().strip() or 0))
    return any(pid_alive(pid) for pid in pids)


def _last_touched(workdir: Path) -> float:
    """The newest modification time in ``workdir`` (its entries and theirs, not deeper)."""
    newest = 0.0
    with contextlib.suppress(OSError):
        newest = workdir.stat().st_mtime
        for entry in workdir.iterdir():
            with contextlib.suppress(OSError):
                newest = max(newest, entry.lstat().st_mtime)
                if entry.is_dir() and not entry.is_symlink():
                    for sub in entry.iterdir():
                        with contextlib.suppress(OSError):
                            newest = max(newest, sub.lstat().st_mtime)
    return newest


def prune_run_directories(
    keep: int = KEEP_FINISHED_RUNS, current: str | None = None, grace: float = PRUNE_GRACE
) -> list[Path]:
    """Remove the run directories of finished runs but the ``keep`` newest; return the removed.

    Finished: no run record (``environment.json`` is removed at teardown; kept runs and runs
    that died holding an environment keep theirs, for ``bannou-env clean``), not in use by a
    live process, not ``current``, and untouched for ``grace`` seconds. Never follows a symlink."""
    now = time.time()
    finished = []
    for d in run_directories():
        if d.name == current or (d / RUN_INFO).exists() or in_use(d):
            continue
        touched = _last_touched(d)
        if now - touched >= grace:
            finished.append((touched, d))
    finished.sort(reverse=True)
    removed = []
    for _, d in finished[keep:]:
        shutil.rmtree(d, ignore_errors=True)
        if not d.exists():
            removed.append(d)
    return removed


def make_options(
    run_id: str | None = None,
    *,
    ready_timeout: float = DEFAULT_READY_TIMEOUT,
    local_command: Sequence[str] | None = None,
    worker: str = "",
    extra: Mapping[str, str] | None = None,
) -> BackendOptions:
    """BackendOptions with a fresh run id and its run directory."""
    rid = run_id or new_run_id()
    return BackendOptions(
        run_id=rid,
        workdir=run_directory(rid),
        ready_timeout=ready_timeout,
        worker=worker,
        local_command=tuple(local_command) if local_command else None,
        extra=dict(extra or {}),
    )
