"""``bannou-env update RUN_ID CHANGE...`` and ``bannou-env rollback RUN_ID``: topology changes
for an environment left running by ``bannou-env deploy`` or ``--bannou-keep``.

The run directory holds the environment's configuration versions (``live.json``). A change is
validated against the current version first (all or nothing), then the run is deployed again
with the changed topology under the same run id: a command-line process cannot take over the
processes another process started, so this redeploys (new processes, new ports, the same
messaging settings; mapping and deployment events are published as after any deploy); if the
changed run does not deploy, the previous version is deployed again (the change is undone).
Inside a pytest session, ``bannou_env.update``/``rollback`` change the running environment in
place.

CHANGE is bannou's TopologyChange as JSON (``'{"action": "scale", "nodeName": "bannou-auth",
"replicas": 2}'``) or a short form: ``add-node:NAME[=SERVICE,...]``, ``remove-node:NAME``,
``move-service:NODE=SERVICE,...``, ``scale:NODE=N``, ``update-env:NODE:KEY=VALUE[,KEY=VALUE]``
(``update-env:*:...`` for every bannou node).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from typing import Any

from ..backends import registry
from ..backends.base import BackendOptions
from ..environment import EnvironmentManager, make_options, read_run_info, run_directory, runs_root
from ..errors import BannouError
from ..live import ACTIONS, ChangeError, History, change_topology, load_history
from ..messaging_env import EnvMessaging, MessagingSettings, read_state
from ..topology import Topology

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
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    update.add_argument("run_id", metavar="RUN_ID")
    update.add_argument("changes", nargs="+", metavar="CHANGE", help="JSON or " + "; ".join(SHORT_FORMS))
    update.add_argument("--ready-timeout", type=float, default=120.0, metavar="SECONDS")
    update.set_defaults(handler=_update)

    rollback = subparsers.add_parser(
        "rollback", help="return a kept environment to its previous configuration version"
    )
    rollback.add_argument("run_id", metavar="RUN_ID")
    rollback.add_argument("--ready-timeout", type=float, default=120.0, metavar="SECONDS")
    rollback.set_defaults(handler=_rollback)


def parse_change(text: str) -> dict[str, Any]:
    """One CHANGE argument -> a TopologyChange dict."""
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ChangeError(f"change {text!r} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ChangeError(f"change {text!r}: expected a JSON object")
        return data
    action, sep, rest = text.partition(":")
    if not sep or action not in ACTIONS or not rest:
        raise ChangeError(f"change {text!r}: expected JSON or one of: {'; '.join(SHORT_FORMS)}")
    if action == "remove-node":
        return {"action": action, "nodeName": rest}
    if action == "update-env":
        node, sep, pairs = rest.partition(":")
        env = {}
        for pair in pairs.split(","):
            key, eq, value = pair.partition("=")
            if not sep or not eq or not key:
                raise ChangeError(f"change {text!r}: expected update-env:NODE:KEY=VALUE[,KEY=VALUE]")
            env[key] = value
        return {"action": action, "nodeName": None if node == "*" else node, "environment": env}
    name, eq, value = rest.partition("=")
    if action == "scale":
        if not eq or not value.strip().isdigit():
            raise ChangeError(f"change {text!r}: expected scale:NODE=N with N a whole number")
        return {"action": action, "nodeName": name, "replicas": int(value)}
    services = [s.strip() for s in value.split(",") if s.strip()]
    if action == "move-service":
        if not services:
            raise ChangeError(f"change {text!r}: expected move-service:NODE=SERVICE[,SERVICE]")
        return {"action": action, "nodeName": name, "services": services}
    return {"action": action, "nodeConfig": {"name": name, "services": services}}


def _kept_run(run_id: str) -> tuple[dict[str, Any], History]:
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
    registry.load(backend).clean(run_id, BackendOptions(run_id=run_id, workdir=workdir))
    options = make_options(run_id, ready_timeout=timeout)
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
        env._history = versions  # type: ignore[attr-defined]
        versions.versions[-1] = (versions.current, env.topology)
        manager.teardown(keep=True)
    except BaseException:
        manager.teardown()
        raise
    print(f"run id: {run_id}, configuration version {versions.current}")
    for node, url in env.urls().items():
        print(f"  {node}: {url}")


def _progress(text: str, done: bool) -> None:
    print(f" ... {text}" if done else text, end="\n" if done else "", flush=True)


def _update(args: argparse.Namespace) -> int:
    changes = [parse_change(c) for c in args.changes]
    info, history = _kept_run(args.run_id)
    previous = history.versions[-1][1]
    new = change_topology(previous, changes)  # validates everything first
    history.versions.append((history.current + 1, new))
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
    return 0


def _rollback(args: argparse.Namespace) -> int:
    info, history = _kept_run(args.run_id)
    if len(history.versions) < 2:
        raise ChangeError(
            f"environment {args.run_id!r} is at configuration version {history.current}, its first:"
            " nothing to roll back"
        )
    history.versions.pop()
    _redeploy(args.run_id, info, history.versions[-1][1], history, args.ready_timeout)
    return 0
