"""``bannou-env deploy|status|logs|clean``: environments outside a pytest session.

``deploy`` starts a preset and leaves it running (detached: the local backend's processes are
their own process groups); the run id it prints is what ``status``, ``logs`` and ``clean`` take.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import sys
from pathlib import Path

import httpx

from .._support.masking import mask_text, topology_secrets
from .._support.pids import pid_alive
from ..backends import registry
from ..backends.base import BackendOptions
from ..environment.live import load_history
from ..environment.manager import EnvironmentManager, resolve_backend
from ..environment.runs import (
    RUN_INFO,
    make_options,
    read_run_info,
    run_directories,
    run_directory,
    runs_root,
)
from ..environment.sweep import stop_run_testers, sweep
from ..errors import BannouError
from ..topology.model import Topology
from ._args import add_presets_dir, lines_arg, pairs, preset_library, replica_counts, run_id_arg, seconds_arg


def register(subparsers: argparse._SubParsersAction) -> None:
    deploy = subparsers.add_parser(
        "deploy",
        help="deploy a preset, wait until it is ready and leave it running",
        description="Deploys PRESET, waits until every node is ready, prints the node URLs, the run id "
        "and the command that removes it, and exits leaving the environment running.",
    )
    deploy.add_argument("preset", metavar="PRESET")
    deploy.add_argument(
        "--backend",
        default=os.environ.get("BANNOU_BACKEND", "local"),
        metavar="NAME",
        help="backend name or auto (default: $BANNOU_BACKEND or local)",
    )
    add_presets_dir(deploy, "--presets-dir")
    deploy.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment override for every bannou node (repeatable)",
    )
    deploy.add_argument(
        "--replicas",
        action="append",
        default=[],
        metavar="NODE=N",
        help="replica override for one node (repeatable)",
    )
    deploy.add_argument(
        "--ready-timeout", type=seconds_arg, default=BackendOptions.ready_timeout, metavar="SECONDS"
    )
    deploy.add_argument(
        "--local-command",
        default=os.environ.get("BANNOU_LOCAL_COMMAND", ""),
        metavar="COMMAND",
        help="command for bannou nodes on the local backend",
    )
    deploy.set_defaults(handler=_deploy)

    status = subparsers.add_parser(
        "status", help="environments left running (kept or deployed) and their health"
    )
    status.add_argument("--run-id", type=run_id_arg, metavar="RUN_ID", help="only this run")
    status.set_defaults(handler=_status)

    logs = subparsers.add_parser("logs", help="the log of a node of a run")
    logs.add_argument("run_id", type=run_id_arg, metavar="RUN_ID")
    logs.add_argument("node", metavar="NODE")
    logs.add_argument("--tail", type=lines_arg, default=None, metavar="N", help="only the last N lines")
    logs.add_argument("--backend", default=None, metavar="NAME", help="default: the run's backend")
    logs.set_defaults(handler=_logs)

    clean = subparsers.add_parser(
        "clean",
        help="remove what a run (or every dead session) left behind",
        description="Without --run-id, removes the resources of every session whose owner process "
        "is gone (environments kept with --bannou-keep or deployed with `bannou-env deploy` count).",
    )
    clean.add_argument("--run-id", type=run_id_arg, metavar="RUN_ID")
    clean.add_argument(
        "--backend",
        default="all",
        metavar="NAME|all",
        help="clean one backend, or every available one (default)",
    )
    clean.add_argument(
        "--all-stale",
        action="store_true",
        help="remove every dead session's resources on every available backend, sparing kept "
        "environments (the sweep each pytest session runs before its first deploy)",
    )
    clean.set_defaults(handler=_clean)


def _deploy(args: argparse.Namespace) -> int:
    environment = pairs(args.env, "--env")
    replicas = replica_counts(args.replicas)
    topology = preset_library(args.presets_dir).resolve(
        args.preset, environment=environment or None, replicas=replicas or None
    )
    options = make_options(
        ready_timeout=args.ready_timeout,
        local_command=shlex.split(args.local_command) if args.local_command else None,
    )

    def progress(text: str, done: bool) -> None:
        print(f" ... {text}" if done else text, end="\n" if done else "", flush=True)

    manager = EnvironmentManager(args.backend, options, progress=progress)
    try:
        env = manager.activate(args.preset, topology)
        manager.teardown(keep=True)
    except BaseException:
        manager.teardown()
        raise
    print(f"run id: {env.run_id}")
    for node, url in env.urls().items():
        print(f"  {node}: {url}")
    print(f"logs:   bannou-env logs {env.run_id} NODE")
    print(f"remove: bannou-env clean --run-id {env.run_id} --backend {env.backend}")
    return 0


def _run_dir(run_id: str) -> Path:
    """The run directory of a run id from the command line: under a runs root this user owns."""
    runs_root()
    return run_directory(run_id)


def _runs(run_id: str | None) -> list[tuple[Path, dict]]:
    dirs = [_run_dir(run_id)] if run_id else run_directories()
    out = []
    for d in dirs:
        info = read_run_info(d)
        if info is not None:
            out.append((d, info))
    return out


def _owner(info: dict) -> int:
    """The owner pid a run record names (0 when it names none that could be a pid)."""
    try:
        return max(0, int(info.get("owner_pid") or 0))
    except (TypeError, ValueError, OverflowError):
        return 0


def _status(args: argparse.Namespace) -> int:
    runs = _runs(args.run_id)
    if not runs:
        print(f"no environments{f' for run {args.run_id}' if args.run_id else ''} under {runs_root()}")
        return 1 if args.run_id else 0
    for _d, info in runs:
        owner = _owner(info)
        who = "kept" if info.get("kept") else (f"in use by pid {owner}" if pid_alive(owner) else "orphaned")
        print(f"{info.get('run_id')}: {info.get('environment')} on {info.get('backend')} ({who})")
        urls = info.get("urls")
        for node, url in (urls if isinstance(urls, dict) else {}).items():
            print(f"  {node}: {url} {_health(url)}")
    return 0


def _health(url: object) -> str:
    if not isinstance(url, str):
        return "(not a URL)"  # a run record edited by hand
    try:
        r = httpx.get(url.rstrip("/") + "/health", timeout=1.0)
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        return f"(unreachable: {type(exc).__name__})"
    return f"(health {r.status_code})"


def _logs(args: argparse.Namespace) -> int:
    workdir = _run_dir(args.run_id)
    info = read_run_info(workdir) or {}
    recorded = info.get("backend")
    backend_name = args.backend or (recorded if isinstance(recorded, str) else None) or "local"
    node = _node_of(args.run_id, info, args.node)
    cls = registry.load(backend_name)
    backend = cls(BackendOptions(run_id=args.run_id, workdir=workdir))
    text = backend.logs(node, args.tail)
    if not text and not workdir.is_dir():
        raise BannouError(f"no run {args.run_id!r} under {runs_root()}; see `bannou-env status`")
    if not text and not info:  # no record to check the name against, and nothing logged under it
        raise BannouError(
            f"run {args.run_id} has no log of a node {args.node!r} and no record of its nodes;"
            " see `bannou-env status`"
        )
    sys.stdout.write(mask_text(text, run_secrets(workdir)))
    return 0


def _node_of(run_id: str, info: dict, name: str) -> str:
    """The node a name means in a run (a node, an app id or a service, as bannou routes it);
    a ``BannouError`` listing the nodes when it means none. Runs recorded without routing
    (older versions) know their node names only."""
    routing = info.get("routing")
    if isinstance(routing, dict):
        try:
            return Topology.from_routing(routing).node_for(name).name
        except KeyError as exc:
            raise BannouError(f"run {run_id}: {exc.args[0]}") from None
        except (TypeError, ValueError):  # a damaged record: fall back to the node names
            pass
    nodes = [str(n) for n in info.get("nodes") or ()]
    if nodes and name not in nodes:
        raise BannouError(f"run {run_id} has no node {name!r}; nodes: {', '.join(nodes)}")
    return name


def run_secrets(workdir: Path) -> set[str]:
    """Secret values of every configuration version a run recorded (a kept run's ``live.json``)."""
    try:
        history = load_history(workdir)
    except (KeyError, TypeError, ValueError):  # a damaged record: show the log, masked as far as known
        return set()
    return topology_secrets(t for _v, t in history.versions) if history is not None else set()


def _clean(args: argparse.Namespace) -> int:
    if args.all_stale:
        if args.run_id:
            raise BannouError("bannou-env clean: --all-stale and --run-id exclude each other; use one")
        names = registry.known_names() if args.backend == "all" else [registry.canonical(args.backend)]
        removed = sweep(names, say=print)
        if not removed:
            print("nothing stale to remove")
        return 0
    # checked before anything is removed: the run id's directory, the runs root this user owns
    workdir = _run_dir(args.run_id) if args.run_id else None
    if workdir is None:
        runs_root()
    if args.backend == "all":
        names = registry.known_names()
    else:
        resolve_backend(args.backend)  # a clear error when it cannot run here
        names = [registry.canonical(args.backend)]
    removed: list[str] = []
    for name in names:
        avail = registry.availability(name)
        if not avail:
            if args.backend != "all":
                print(f"{name}: skipped ({avail.reason})", file=sys.stderr)
            continue
        options = BackendOptions(run_id=args.run_id, workdir=workdir) if workdir is not None else None
        removed += registry.load(name).clean(args.run_id, options)
    if args.run_id:
        removed += stop_run_testers(args.run_id)  # its testers, whichever backend the run used
    for d, info in _runs(args.run_id):
        owner = _owner(info)
        if args.run_id or info.get("kept") or not pid_alive(owner):
            with contextlib.suppress(OSError):
                (d / RUN_INFO).unlink()
                removed.append(f"removed run record {d / RUN_INFO}")
            if args.run_id:
                shutil.rmtree(d, ignore_errors=True)
                removed.append(f"removed run directory {d}")
    for line in removed:
        print(line)
    if not removed:
        print(f"nothing to remove{f' for run {args.run_id}' if args.run_id else ''}")
    return 0
