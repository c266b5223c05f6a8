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
from urllib.parse import urlsplit

import httpx

from .._support.masking import mask_text, topology_secrets
from .._support.pids import pid_alive
from ..backends import registry
from ..backends.base import Backend, BackendOptions
from ..environment.kept import take_over, taken_over
from ..environment.live import load_history
from ..environment.manager import EnvironmentManager, resolve_backend
from ..environment.runs import (
    RUN_ID_PATTERN,
    RUN_INFO,
    make_options,
    read_run_info,
    run_directories,
    run_directory,
    run_project,
    runs_root,
)
from ..environment.sweep import spared, stop_run_testers, sweep
from ..errors import BannouError
from ..health.infrastructure import check_nodes
from ..topology.model import Node, Topology
from ._args import (
    UsageError,
    add_backend_options,
    add_presets_dir,
    backend_options,
    lines_arg,
    pairs,
    preset_library,
    replica_counts,
    run_backend_options,
    run_id_arg,
    seconds_arg,
    setting,
)
from ._output import node_addresses, print_nodes, recorded_address
from .project import ConfigError, Project, find_project


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
        default=None,
        metavar="NAME",
        help="backend name or auto (default: $BANNOU_BACKEND, the project's bannou_backend, or local)",
    )
    add_backend_options(deploy)
    add_presets_dir(deploy)
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
        "--ready-timeout",
        type=seconds_arg,
        default=None,
        metavar="SECONDS",
        help="default: $BANNOU_READY_TIMEOUT, the project's bannou_ready_timeout, or "
        f"{BackendOptions.ready_timeout:g}",
    )
    deploy.add_argument(
        "--local-command",
        default=None,
        metavar="COMMAND",
        help="command for bannou nodes on the local backend (default: $BANNOU_LOCAL_COMMAND or the "
        "project's bannou_local_command)",
    )
    deploy.set_defaults(handler=_deploy)

    status = subparsers.add_parser(
        "status",
        help="environments left running (kept or deployed) and their health",
        description="Lists every run; those recorded by another project (another checkout) are "
        "marked as such.",
    )
    status.add_argument("--run-id", type=run_id_arg, metavar="RUN_ID", help="only this run")
    status.set_defaults(handler=_status)

    logs = subparsers.add_parser("logs", help="the log of a node of a run")
    logs.add_argument("run_id", type=run_id_arg, metavar="RUN_ID")
    logs.add_argument("node", metavar="NODE")
    logs.add_argument("--tail", type=lines_arg, default=None, metavar="N", help="only the last N lines")
    logs.add_argument("--backend", default=None, metavar="NAME", help="default: the run's backend")
    add_backend_options(logs)  # over the options the run was deployed with
    logs.set_defaults(handler=_logs)

    clean = subparsers.add_parser(
        "clean",
        help="remove what a run (or this project's dead sessions) left behind",
        description="Without --run-id, removes the runs of the current project (the pytest rootdir "
        "around the current directory) whose session is gone, kept ones (--bannou-keep, "
        "`bannou-env deploy`) included, and lists what `--all-stale` would remove besides.",
    )
    clean.add_argument("--run-id", type=run_id_arg, metavar="RUN_ID")
    clean.add_argument(
        "--backend",
        default="all",
        metavar="NAME|all",
        help="clean one backend, or every available one (default)",
    )
    add_backend_options(clean)  # over the options each run was deployed with
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
    project = find_project()
    topology = preset_library(args.presets_dir, project=project).resolve(
        args.preset, environment=environment or None, replicas=replicas or None
    )
    backend = setting(args.backend, "BANNOU_BACKEND", "bannou_backend", "local", project)
    options = make_options(
        ready_timeout=_ready_timeout(args.ready_timeout, project),
        local_command=_local_command(args.local_command, project),
        extra=backend_options(args.backend_options, project),  # recorded with the run
    )

    def progress(text: str, done: bool) -> None:
        print(f" ... {text}" if done else text, end="\n" if done else "", flush=True)

    manager = EnvironmentManager(backend, options, progress=progress, project=project.rootdir)
    try:
        env = manager.activate(args.preset, topology)
        manager.teardown(keep=True)
    except BaseException:
        manager.teardown()
        raise
    print(f"run id: {env.run_id}")
    engine = manager.backend
    if engine is not None:
        print_nodes(engine, env.topology)
    print(f"status: bannou-env status --run-id {env.run_id}")
    print(f"logs:   bannou-env logs {env.run_id} NODE")
    print(f"remove: bannou-env clean --run-id {env.run_id} --backend {env.backend}")
    if engine is not None:
        engine.detach()  # the run keeps running; what only this process held is closed
    return 0


def _ready_timeout(given: float | None, project: Project) -> float:
    if given is not None:
        return given
    text = setting(None, "BANNOU_READY_TIMEOUT", "bannou_ready_timeout", "", project)
    if not text:
        return BackendOptions.ready_timeout
    try:
        return seconds_arg(text)
    except argparse.ArgumentTypeError as exc:
        where = "BANNOU_READY_TIMEOUT" if os.environ.get("BANNOU_READY_TIMEOUT", "").strip() else None
        raise BannouError(f"{where or project.where('bannou_ready_timeout')}: {exc}") from None


def _local_command(given: str | None, project: Project) -> list[str] | None:
    text = setting(given, "BANNOU_LOCAL_COMMAND", "bannou_local_command", "", project)
    try:
        return shlex.split(text) if text else None
    except ValueError as exc:
        raise UsageError(f"local command {text!r}: cannot split it: {exc}; quote paths with spaces") from None


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
    try:
        project: Project | None = find_project()
    except ConfigError as exc:  # status still lists the runs, without telling projects apart
        print(f"bannou-env: {exc}", file=sys.stderr)
        project = None
    for d, info in runs:
        owner = _owner(info)
        who = "kept" if info.get("kept") else (f"in use by pid {owner}" if pid_alive(owner) else "orphaned")
        where = f" [{_elsewhere(info, project)}]" if project and _elsewhere(info, project) else ""
        print(f"{info.get('run_id')}: {info.get('environment')} on {info.get('backend')} ({who}){where}")
        # a kept run is taken over: its nodes are checked where they answer now (kubernetes:
        # port-forwards of this command; those deploy opened closed with it)
        with taken_over(d, info) if info.get("kept") else contextlib.nullcontext() as backend:
            _print_run(d, info, backend)
        _print_versions(d)
    return 0


def _print_run(workdir: Path, info: dict, backend: Backend | None) -> None:
    """A run's nodes (every replica, with their /health) and its infrastructure's health: through
    ``backend`` when the run could be taken over, else at the addresses its record names."""
    topology = _last_topology(workdir)
    if backend is not None and topology is not None:
        for label, node, text in node_addresses(backend, topology):
            reached = node.http_health and not text.startswith("(unavailable")
            print(f"  {label}: {text} {_health(text)}" if reached else f"  {label}: {text}")
    else:
        nodes = {n.name: n for n in topology.nodes} if topology is not None else {}
        urls = info.get("urls")
        plain = _not_http(workdir) | set(info.get("no_http") or [])  # checked by their own protocol
        for node, url in (urls if isinstance(urls, dict) else {}).items():
            text = recorded_address(nodes.get(node), url) if isinstance(url, str) else url
            print(f"  {node}: {text}" if node in plain else f"  {node}: {url} {_health(url)}")
    infrastructure = _infrastructure_health(workdir, info, backend)
    if infrastructure:
        print("  infrastructure:")
        print("\n".join(f"    {line}" for line in infrastructure))
    for line in backend.kept_hints() if backend is not None else ():
        print(f"  {line}")


def _last_topology(workdir: Path) -> Topology | None:
    try:
        history = load_history(workdir)
    except (AttributeError, KeyError, TypeError, ValueError):  # a damaged record
        return None
    return history.versions[-1][1] if history is not None and history.versions else None


def _infrastructure_health(workdir: Path, info: dict, backend: Backend | None = None) -> list[str]:
    """bannou's ``InfrastructureHealth`` of a run: its infrastructure nodes (the configuration it
    recorded, with their credentials) checked where ``backend`` (the run taken over) says they
    answer, else at the addresses its record names."""
    topology = _last_topology(workdir)
    if topology is None:
        return []
    urls = info.get("urls") if isinstance(info.get("urls"), dict) else {}

    def address(node: Node) -> tuple[str, int]:
        if backend is not None:
            ep = backend.endpoint(node.name, node.ports[0])
            return ep.host, ep.port
        url = urlsplit(str(urls.get(node.name) or ""))
        if not url.hostname or not url.port:
            raise BannouError(f"the run record has no address of {node.name!r}")
        return url.hostname, url.port

    return [h.line() for h in check_nodes(topology.infrastructure, address, timeout=3.0)]


def _not_http(workdir: Path) -> set[str]:
    """The run's infrastructure nodes that answer no HTTP /health (Redis, RabbitMQ, MySQL)."""
    try:
        history = load_history(workdir)
    except (AttributeError, KeyError, TypeError, ValueError):
        return set()
    if history is None or not history.versions:
        return set()
    return {n.name for n in history.versions[-1][1].infrastructure if not n.http_health}


def _print_versions(workdir: Path) -> None:
    """The run's configuration versions (number, time, what changed; the current one marked),
    as ``bannou-env rollback RUN --version N`` takes them."""
    try:
        history = load_history(workdir)
    except (AttributeError, KeyError, TypeError, ValueError):  # a live state edited by hand
        print("  configuration versions: (unreadable live.json)")
        return
    if history is None:
        return
    print("  configuration versions:")
    for line in history.lines():
        print(f"   {line}")


def _elsewhere(info: dict, project: Project) -> str:
    """How a run of another project is marked ("" for a run of ``project``)."""
    where = run_project(info)
    if where is None:
        return "project unknown"
    return "" if project.contains(where) else f"other checkout: {where}"


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
    extra = run_backend_options(info, args.backend_options)
    cls = registry.load(backend_name)
    backend = cls(BackendOptions(run_id=args.run_id, workdir=workdir, extra=extra))
    take_over(backend, workdir)  # container backends find the nodes' containers this way
    try:
        text = backend.logs(node, args.tail)
    finally:
        backend.detach()
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
    flags = list(args.backend_options)
    if flags:
        backend_options(flags)  # a bad one is a usage error before anything is removed
    if args.all_stale:
        if args.run_id:
            raise UsageError("bannou-env clean: --all-stale and --run-id exclude each other; use one")
        if args.backend_options:
            raise UsageError(
                "bannou-env clean: --all-stale uses each backend's defaults (KUBECONFIG ...), as the"
                " sweep of a pytest session does; leave --backend-option out, or clean one run with"
                " --run-id RUN_ID --backend-option KEY=VALUE"
            )
        names = registry.known_names() if args.backend == "all" else [registry.canonical(args.backend)]
        removed = sweep(names, say=print)
        if not removed:
            print("nothing stale to remove")
        return 0
    if args.backend != "all":
        resolve_backend(args.backend)  # a clear error when it cannot run here
    names = registry.known_names() if args.backend == "all" else [registry.canonical(args.backend)]
    if args.run_id:
        return _clean_one(args.run_id, args.backend, names, flags)
    return _clean_project(find_project(), names, flags)


def _clean_one(run_id: str, backend: str, names: list[str], flags: list[str]) -> int:
    """``clean --run-id``: everything of one run, on every backend asked for, with the backend
    options it was deployed with (``run_backend_options``: ``flags`` winning)."""
    workdir = _run_dir(run_id)  # checked before anything is removed
    extra = run_backend_options(read_run_info(workdir) or {}, flags)
    removed: list[str] = []
    for name in names:
        avail = registry.availability(name)
        if not avail:
            if backend != "all":
                print(f"{name}: skipped ({avail.reason})", file=sys.stderr)
            continue
        options = BackendOptions(run_id=run_id, workdir=workdir, extra=extra)
        removed += registry.load(name).clean(run_id, options)
    removed += stop_run_testers(run_id)  # its testers, whichever backend the run used
    removed += _remove_run(workdir)
    for line in removed:
        print(line)
    if not removed:
        print(f"nothing to remove for run {run_id}")
    return 0


def _clean_project(project: Project, names: list[str], flags: list[str]) -> int:
    """``clean`` alone: the runs this project recorded whose session is gone (kept ones too);
    then what ``--all-stale`` would remove besides, without removing it."""
    removed: list[str] = []
    cleaned: set[str] = set()
    for d, info in _runs(None):
        where = run_project(info)
        if where is None or not project.contains(where):
            continue
        if not info.get("kept") and pid_alive(_owner(info)):
            continue  # its session still runs
        recorded = info.get("backend")
        if isinstance(recorded, str) and recorded in registry.known_names() and recorded not in names:
            continue  # recorded on another backend than the one asked for
        backends = [recorded] if recorded in names else names
        for name in backends:
            if registry.availability(name):
                options = BackendOptions(run_id=d.name, workdir=d, extra=run_backend_options(info, flags))
                removed += [
                    f"run {d.name} ({name}): {line}" for line in registry.load(name).clean(d.name, options)
                ]
        removed += stop_run_testers(d.name)
        removed += _remove_run(d)
        cleaned.add(d.name)
    for line in removed:
        print(line)
    if not cleaned:
        print(f"nothing of this project ({project.rootdir}) to remove")
    _tell_all_stale(names, cleaned, project)
    return 0


def _remove_run(workdir: Path) -> list[str]:
    removed = []
    with contextlib.suppress(OSError):
        (workdir / RUN_INFO).unlink()
        removed.append(f"removed run record {workdir / RUN_INFO}")
    if workdir.is_dir():
        shutil.rmtree(workdir, ignore_errors=True)
        removed.append(f"removed run directory {workdir}")
    return removed


def _tell_all_stale(names: list[str], cleaned: set[str], project: Project) -> None:
    """What ``clean --all-stale`` (the sweep) would remove that ``clean`` left: the dead runs
    the backends find, other projects' and those without a record, kept ones spared."""
    lines: dict[str, str] = {}
    for name in names:
        if not registry.availability(name):
            continue
        try:
            dead = registry.load(name).dead_runs()
        except Exception as exc:  # looking must not fail the clean that was asked for
            lines[name] = f"{name}: cannot tell ({type(exc).__name__}: {exc})"
            continue
        if dead is None:
            lines[name] = f"{name}: whatever it finds of dead sessions (it cannot name their runs)"
            continue
        for run_id in sorted(dead - cleaned):
            if RUN_ID_PATTERN.fullmatch(run_id) and run_id not in lines and spared(run_id) is None:
                lines[run_id] = f"run {run_id} on {name} ({_whose(run_id, project)})"
    if lines:
        print("`bannou-env clean --all-stale` would also remove:")
        for line in lines.values():
            print(f"  {line}")


def _whose(run_id: str, project: Project) -> str:
    info = read_run_info(run_directory(run_id))
    if info is None:
        return "no run record"
    return f"{info.get('environment')}, {_elsewhere(info, project) or 'this project'}"
