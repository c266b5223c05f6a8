"""``bannou-env update RUN_ID CHANGE...`` and ``bannou-env rollback RUN_ID``: topology changes
for an environment left running by ``bannou-env deploy`` or ``--bannou-keep``.

The run directory holds the environment's configuration versions (``live.json``). A change is
validated against the current version first (all or nothing), then made in place, as
``bannou_env.update``/``rollback`` do inside a pytest session: the backend takes the run over
(its processes, containers, services or pods) and changes only what differs, so the nodes that
did not change keep running with the same process or container and the same ports; mapping and
deployment events are published as after any change. If the change fails half-way, the run is
taken back to the previous version (the change is undone) and the error says so. A third-party
backend that cannot take a run over gets the run deployed again instead (new ports).

CHANGE is bannou's TopologyChange as JSON (``'{"action": "scale", "nodeName": "bannou-auth",
"replicas": 2}'``) or a short form: ``add-node:NAME[=SERVICE,...]``, ``remove-node:NAME``,
``move-service:NODE=SERVICE,...``, ``scale:NODE=N``, ``update-env:NODE:KEY=VALUE[,KEY=VALUE]``
(``update-env:*:...`` for every bannou node).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import Any

from ..backends import registry
from ..backends.base import BackendOptions
from ..environment.environment import Environment
from ..environment.kept import Change, change_kept_run, in_place_supported, recorded_options
from ..environment.live import (
    ACTIONS,
    ChangeError,
    ConfigVersion,
    History,
    announce,
    as_change,
    change_topology,
    load_history,
)
from ..environment.manager import EnvironmentManager
from ..environment.runs import make_options, read_run_info, run_directory, runs_root
from ..errors import BannouError
from ..messaging.contract import MessagingError
from ..messaging.session import EnvMessaging, MessagingSettings, read_state
from ..topology.model import Topology
from ._args import run_id_arg, seconds_arg, whole_number
from ._output import print_nodes

SHORT_FORMS = (
    "add-node:NAME[=SERVICE,...]",
    "remove-node:NAME",
    "move-service:NODE=SERVICE,...",
    "scale:NODE=N",
    "update-env:NODE:KEY=VALUE[,KEY=VALUE] (NODE * = every bannou node)",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    update = subparsers.add_parser(
        "update",
        help="apply topology changes to a kept environment (a new configuration version)",
        description=__doc__.split("\n\n", 1)[1].replace("``", ""),  # plain text for --help
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    update.add_argument("run_id", type=run_id_arg, metavar="RUN_ID")
    update.add_argument("changes", nargs="+", metavar="CHANGE", help="JSON or " + "; ".join(SHORT_FORMS))
    update.add_argument("--ready-timeout", type=seconds_arg, default=120.0, metavar="SECONDS")
    update.set_defaults(handler=_update)

    rollback = subparsers.add_parser(
        "rollback",
        help="return a kept environment to an earlier configuration version (a new version)",
        description="Returns the run to configuration version N (default: the one before the current)"
        " and records that as a new version, as bannou's orchestrator does; `bannou-env status`"
        " lists the versions.",
    )
    rollback.add_argument("run_id", type=run_id_arg, metavar="RUN_ID")
    rollback.add_argument(
        "--version",
        type=version_arg,
        default=None,
        metavar="N",
        help="the configuration version to return to",
    )
    rollback.add_argument("--ready-timeout", type=seconds_arg, default=120.0, metavar="SECONDS")
    rollback.set_defaults(handler=_rollback)


def parse_change(text: str) -> dict[str, Any]:
    """One CHANGE argument -> a TopologyChange dict."""
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ChangeError(f"change {_short(text)} is not valid JSON: {exc}") from None
        except RecursionError:
            raise ChangeError(f"change {_short(text)}: the JSON is nested too deeply") from None
        if not isinstance(data, dict):
            raise ChangeError(f"change {_short(text)}: expected a JSON object")
        _check_change(data, _short(text))
        return data
    action, sep, rest = text.partition(":")
    if not sep or action not in ACTIONS or not rest:
        raise ChangeError(f"change {_short(text)}: expected JSON or one of: {'; '.join(SHORT_FORMS)}")
    if action == "remove-node":
        return {"action": action, "nodeName": rest}
    if action == "update-env":
        node, sep, pairs = rest.partition(":")
        env = {}
        for pair in pairs.split(","):
            key, eq, value = pair.partition("=")
            if not sep or not eq or not key:
                raise ChangeError(f"change {_short(text)}: expected update-env:NODE:KEY=VALUE[,KEY=VALUE]")
            env[key] = value
        return {"action": action, "nodeName": None if node == "*" else node, "environment": env}
    name, eq, value = rest.partition("=")
    if action == "scale":
        replicas = whole_number(value) if eq else None
        if replicas is None:
            raise ChangeError(f"change {_short(text)}: expected scale:NODE=N with N a whole number")
        return {"action": action, "nodeName": name, "replicas": replicas}
    services = [s.strip() for s in value.split(",") if s.strip()]
    if action == "move-service":
        if not services:
            raise ChangeError(f"change {_short(text)}: expected move-service:NODE=SERVICE[,SERVICE]")
        return {"action": action, "nodeName": name, "services": services}
    return {"action": action, "nodeConfig": {"name": name, "services": services}}


# the JSON types of a TopologyChange's fields (and of nodeConfig's, bannou's TopologyNode):
# checked here so that a wrong type is a message, not a traceback from deep inside
CHANGE_FIELDS = {
    "action": "string",
    "nodeName": "string",
    "services": "strings",
    "replicas": "count",
    "environment": "env",
    "nodeConfig": "object",
}
NODE_CONFIG_FIELDS = {
    "name": "string",
    "services": "strings",
    "layers": "strings",
    "replicas": "count",
    "environment": "env",
    "appId": "string",
    "meshEnabled": "bool",
    "resources": "object",
}
_KINDS = {
    "string": "a string",
    "strings": "a list of strings",
    "count": "a whole number >= 0",
    "env": "an object of KEY: value",
    "object": "an object",
    "bool": "true or false",
}
_SCALAR = (str, int, float, bool)


def _check_change(data: dict[str, Any], where: str) -> None:
    """``ChangeError`` naming an unknown key or the first field whose type is wrong."""
    unknown = sorted(set(data) - set(CHANGE_FIELDS))
    if unknown:
        raise ChangeError(
            f"change {where}: unknown key(s) {', '.join(_short(k, 40) for k in unknown[:5])};"
            f" keys: {', '.join(CHANGE_FIELDS)}"
        )
    _check_fields(data, CHANGE_FIELDS, "", where)
    config = data.get("nodeConfig")
    if isinstance(config, dict):
        _check_fields(config, NODE_CONFIG_FIELDS, "nodeConfig.", where)


def _check_fields(data: dict[str, Any], fields: dict[str, str], prefix: str, where: str) -> None:
    for key, kind in fields.items():
        value = data.get(key)
        if value is None:
            continue
        if not _is_kind(value, kind):
            raise ChangeError(f"change {where}: {prefix}{key} must be {_KINDS[kind]}, got {_what(value)}")
        if kind == "env":
            for name, v in value.items():
                if not isinstance(v, _SCALAR):
                    raise ChangeError(
                        f"change {where}: {prefix}{key}.{name} must be a string, number or boolean,"
                        f" got {_what(v)}"
                    )


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "strings":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "count":
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if kind == "bool":
        return isinstance(value, bool)
    return isinstance(value, dict)  # env, object


def _what(value: Any) -> str:
    """What a JSON value is, for a message (never the repr of a whole structure)."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value!r}" if len(repr(value)) <= 40 else "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else "null"


def _short(text: str, limit: int = 120) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _kept_run(run_id: str) -> tuple[dict[str, Any], History]:
    runs_root()  # refused when another user could have written what is read from it
    workdir = run_directory(run_id)
    info = read_run_info(workdir)
    if info is None:
        raise BannouError(f"no environment {run_id!r} under {runs_root()}; see `bannou-env status`")
    if not info.get("kept"):
        raise BannouError(
            f"environment {run_id!r} belongs to a running session (pid {info.get('owner_pid')}); change it"
            " there with bannou_env.update(...), or deploy one with `bannou-env deploy` / --bannou-keep"
        )
    history = load_history(workdir)
    if history is None:
        raise BannouError(
            f"environment {run_id!r} has no recorded configuration ({workdir / 'live.json'} is missing);"
            " it was kept by an older pytest-bannou: deploy it again"
        )
    return info, history


def _redeploy(
    run_id: str, info: dict[str, Any], topology: Topology, versions: History, timeout: float
) -> None:
    """Remove the run's nodes and deploy ``topology`` under the same run id, left running."""
    workdir = run_directory(run_id)
    state = read_state(workdir).get("messaging") or {}
    injected = state.get("node_env") or {}
    # the previous deploy's broker address etc. are recomputed for the new processes
    nodes = [
        replace(n, environment={k: v for k, v in n.environment.items() if injected.get(k) != v})
        if n.kind != "infrastructure"
        else n
        for n in topology.nodes
    ]
    topology = topology.with_nodes(nodes)
    backend = info.get("backend") or "local"
    extra = recorded_options(info)  # the options it was deployed with
    registry.load(backend).clean(run_id, BackendOptions(run_id=run_id, workdir=workdir, extra=extra))
    options = make_options(run_id, ready_timeout=timeout, extra=extra)
    settings = MessagingSettings(
        amqp_url=state.get("external_amqp"),
        redis_url=state.get("external_redis"),
        heartbeat_interval=float(state.get("heartbeat_interval") or 1.0),
    )
    manager = EnvironmentManager(
        backend, options, progress=_progress, messaging=EnvMessaging(settings, workdir)
    )
    try:
        env = manager.activate(str(info.get("environment") or topology.preset), topology)
        manager.adopt_history(env, versions)
        manager.teardown(keep=True)
    except BaseException:
        manager.teardown()
        raise
    print(f"run id: {run_id}, configuration version {versions.current}")
    _print_nodes(env)


def _progress(text: str, done: bool) -> None:
    print(f" ... {text}" if done else text, end="\n" if done else "", flush=True)


def _in_place(args: argparse.Namespace, info: dict[str, Any], history: History, change: Change) -> int:
    """Make ``change`` to the kept run in place, print where its nodes are now; its version."""
    env, version = change_kept_run(args.run_id, info, history, change, args.ready_timeout, _progress)
    print(f"run id: {args.run_id}, configuration version {version}")
    _print_nodes(env)
    return version


def _print_nodes(env: Environment) -> None:
    """Where the run's nodes answer now (every replica), what to do when those addresses close
    with this command (kubernetes' port-forwards); then what only this process held is closed."""
    engine = env.engine()
    print_nodes(engine, env.topology)
    engine.detach()


def _update(args: argparse.Namespace) -> int:
    changes = [parse_change(c) for c in args.changes]
    info, history = _kept_run(args.run_id)
    previous = history.versions[-1][1]
    new = change_topology(previous, changes)  # validates everything first
    if in_place_supported(info):  # only what differs changes; a failure is undone in place
        _in_place(args, info, history, lambda manager, env: manager.update(env, changes))
        return 0
    entry = history.record(new, [as_change(c).describe() for c in changes])
    try:
        _redeploy(args.run_id, info, new, history, args.ready_timeout)
    except BannouError as exc:  # the run is back at the version it was at, as inside a session
        history.versions.pop()
        try:
            _redeploy(args.run_id, info, previous, history, args.ready_timeout)
        except BannouError as again:
            raise BannouError(
                f"environment {args.run_id!r}: the change failed: {exc.message}; deploying configuration"
                f" version {history.current} again failed too: {again.message}"
            ) from None
        raise BannouError(
            f"environment {args.run_id!r}: the change failed and was undone (configuration version"
            f" {history.current} again): {exc.message}"
        ) from None
    _announce(args.run_id, entry, previous)
    return 0


def _rollback(args: argparse.Namespace) -> int:
    info, history = _kept_run(args.run_id)
    if in_place_supported(info):  # a new version with the target's configuration, in place
        target = history.rollback_target(args.version, f"environment {args.run_id!r}")
        version = _in_place(args, info, history, lambda manager, env: manager.rollback(env, target))
        print(f"configuration version {version}: the configuration of version {target}")
        return 0
    previous = history.versions[-1][1]
    entry = _rollback_version(args.run_id, history, args.version)
    _redeploy(args.run_id, info, history.versions[-1][1], history, args.ready_timeout)
    _announce(args.run_id, entry, previous)
    return 0


def version_arg(text: str) -> int:
    """``--version N``: a configuration version number (1 or more)."""
    value = whole_number(text)
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a configuration version (a whole number >= 1)")
    return value


def _rollback_version(run_id: str, history: History, version: int | None) -> ConfigVersion:
    """Record the rollback to ``version`` (default: the one before the current) as the next
    version of ``history`` and return it; ``ChangeError`` listing the versions for a wrong one."""
    target = history.rollback_target(version, f"environment {run_id!r}")
    entry = history.record(history.topology(target), [f"rollback to configuration version {target}"])
    print(f"configuration version {entry.version}: the configuration of version {target}")
    return entry


def _announce(run_id: str, entry: ConfigVersion, old: Topology) -> None:
    """Publish the ServiceRestart and ConfigurationChanged events of a change to the run's
    broker (when it has one), as a session does after ``bannou_env.update``/``rollback``."""
    workdir = run_directory(run_id)
    url = (read_state(workdir).get("messaging") or {}).get("broker_url")
    history = load_history(workdir)
    if not url or history is None:
        return
    from ..messaging.broker import EventPublisher  # pika only for runs with a broker

    messaging = EnvMessaging(workdir=workdir)
    try:
        messaging.publisher = EventPublisher(url, deadline=10.0)
        announce(messaging, entry, old, history.versions[-1][1])
    except MessagingError as exc:  # the change itself is done: say so, do not fail it
        print(
            f"bannou-env: configuration version {entry.version} is applied, but its events could not be"
            f" published: {exc.message}",
            file=sys.stderr,
        )
    finally:
        messaging.stop()
