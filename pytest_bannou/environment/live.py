"""Live topology changes: bannou's TopologyChange actions applied to a running environment.

``TopologyChange`` mirrors bannou's schema (action add-node | remove-node | move-service | scale
| update-env; nodeName, services, replicas, environment, nodeConfig). ``change_topology`` applies
a list of changes to a ``Topology`` with pure functions and validates them all first: one bad
change (unknown node or service, bad count) raises ``ChangeError`` and nothing is applied.
``EnvironmentManager.update`` then takes the environment there through the backend
(``apply(diff)``), waits for readiness and publishes a new mapping event; every applied call is a
new configuration version (``History``: number, time, what changed), and ``rollback`` returns to an
earlier one the same way, recorded as a new version (as bannou's orchestrator does).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from .._support.files import atomic_write
from .._support.masking import mask_inline
from ..errors import BannouError
from ..messaging.session import LIVE_STATE, read_state
from ..preset.schema import EnvironmentChange, NodeSpec
from ..preset.validate import validate_plain
from ..topology.contract import layer_env_name, service_env_name
from ..topology.diff import Action, diff
from ..topology.model import HealthCheck, Node, Resources, Topology
from .runs import ensure_run_directory

ACTIONS = ("add-node", "remove-node", "move-service", "scale", "update-env")


class ChangeError(BannouError):
    """A topology change that cannot be applied; nothing was changed."""


@dataclass(frozen=True)
class TopologyChange:
    """One of bannou's TopologyChange objects (camelCase keys accepted by ``from_dict``)."""

    action: str
    node_name: str | None = None
    services: tuple[str, ...] = ()
    replicas: int | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    node_config: Mapping[str, Any] | None = None  # TopologyNode, for add-node

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TopologyChange:
        if not isinstance(data, Mapping):
            raise ChangeError(f"a topology change must be an object, got {data!r}")
        known = {"action", "nodeName", "services", "replicas", "environment", "nodeConfig"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ChangeError(
                f"topology change {dict(data)!r}: unknown key(s) {', '.join(unknown)};"
                f" keys: {', '.join(sorted(known))}"
            )
        return cls(
            action=str(data.get("action", "")),
            node_name=data.get("nodeName"),
            services=tuple(data.get("services") or ()),
            replicas=data.get("replicas"),
            environment=dict(data.get("environment") or {}),
            node_config=data.get("nodeConfig"),
        )

    def describe(self) -> str:
        parts = [self.action]
        if self.node_name:
            parts.append(self.node_name)
        if self.services:
            parts.append(",".join(self.services))
        if self.replicas is not None:
            parts.append(f"replicas={self.replicas}")
        if self.environment:
            parts.append(",".join(f"{k}={v}" for k, v in sorted(self.environment.items())))
        config_name = self.node_config.get("name") if isinstance(self.node_config, Mapping) else None
        if config_name and config_name != self.node_name:
            parts.append(str(config_name))
        return " ".join(parts)


def as_change(change: TopologyChange | Mapping[str, Any]) -> TopologyChange:
    return change if isinstance(change, TopologyChange) else TopologyChange.from_dict(change)


# --- pure functions -----------------------------------------------------------------------------


def change_topology(topology: Topology, changes: Iterable[TopologyChange | Mapping[str, Any]]) -> Topology:
    """The topology after ``changes``, applied in order; ``ChangeError`` (naming the change and
    what is wrong) before anything is returned if any change is invalid."""
    items = [as_change(c) for c in changes]
    if not items:
        raise ChangeError("no topology change given; actions: " + ", ".join(ACTIONS))
    for i, change in enumerate(items, 1):
        try:
            topology = _apply_one(topology, change)
        except ChangeError as exc:
            where = f"change {i} of {len(items)} ({change.describe()})"
            raise ChangeError(f"{where}: {exc.message}; nothing was applied") from None
    return topology


def _apply_one(t: Topology, c: TopologyChange) -> Topology:
    if c.action == "add-node":
        return add_node(t, _node_config(c))
    if c.action == "remove-node":
        return remove_node(t, _need_node_name(c))
    if c.action == "move-service":
        return move_service(t, c.services, _need_node_name(c))
    if c.action == "scale":
        return scale(t, _need_node_name(c), c.replicas)
    if c.action == "update-env":
        return update_env(t, c.node_name, c.environment)
    raise ChangeError(f"unknown action {c.action!r}; actions: {', '.join(ACTIONS)}")


def _node_config(c: TopologyChange) -> Any:
    """An add-node's TopologyNode: ``nodeConfig`` named by ``nodeName`` when it has no name of its
    own (the error for a missing name promises it), or built from ``nodeName`` and ``services``."""
    if c.node_config is None:
        return {"name": c.node_name, "services": list(c.services)}
    if not isinstance(c.node_config, Mapping) or not c.node_name:
        return c.node_config  # add_node names what is wrong with it
    name = c.node_config.get("name")
    if name and name != c.node_name:
        raise ChangeError(
            f"nodeName {c.node_name!r} and nodeConfig.name {name!r} differ; give the node one name"
        )
    return {**c.node_config, "name": c.node_name}


def _need_node_name(c: TopologyChange) -> str:
    if not c.node_name:
        raise ChangeError(f"action {c.action} needs nodeName")
    return c.node_name


def _bannou_node(t: Topology, name: str) -> Node:
    for n in t.nodes:
        if n.name == name:
            if n.kind == "infrastructure":
                raise ChangeError(f"node {name!r} is infrastructure; changes apply to bannou nodes")
            return n
    names = ", ".join(n.name for n in t.bannou_nodes) or "(none)"
    raise ChangeError(f"preset {t.preset!r} has no node {name!r}; bannou nodes: {names}")


def known_services(t: Topology) -> set[str]:
    return set(t.known_services)


def _replace_node(t: Topology, node: Node) -> Topology:
    return t.with_nodes(node if n.name == node.name else n for n in t.nodes)


def _validated(data: Any, model: type, what: str) -> Any:
    """``data`` checked by the preset validation (the same rules as a preset file's part), so a
    live change cannot bring in what a preset file could not (a node name that is a path, NUL)."""
    spec, problems = validate_plain(data, model, what)
    if problems:
        raise ChangeError("; ".join(str(p) for p in problems))
    return spec


def add_node(t: Topology, config: Mapping[str, Any]) -> Topology:
    """A new bannou node (bannou's TopologyNode: name, services, layers, replicas, environment,
    appId, meshEnabled); image, command, ports and healthcheck come from the main node."""
    if not isinstance(config, Mapping):
        raise ChangeError(
            f"nodeConfig must be an object (bannou's TopologyNode), got {type(config).__name__}"
        )
    name = config.get("name")
    if not name or not isinstance(name, str):
        raise ChangeError("add-node needs nodeConfig.name (or nodeName)")
    if name in t.node_names:
        raise ChangeError(f"node {name!r} already exists in preset {t.preset!r}")
    unknown_keys = sorted(
        set(config)
        - {"name", "services", "layers", "replicas", "environment", "appId", "meshEnabled", "resources"}
    )
    if unknown_keys:
        raise ChangeError(f"nodeConfig: unknown key(s) {', '.join(unknown_keys)}")
    spec = _validated(dict(config), NodeSpec, "nodeConfig")
    template = _template(t)
    app_id = config.get("appId") or name
    if any(n.app_id == app_id for n in t.bannou_nodes):
        raise ChangeError(f"app id {app_id!r} is already used by another node")
    services = tuple(dict.fromkeys(config.get("services") or ()))
    layers = tuple(dict.fromkeys(config.get("layers") or ()))
    _check_services(t, services)
    replicas = _count(config.get("replicas", 1))
    env = {k: v for k, v in template.environment.items() if not _is_enablement(k)}
    if layers:
        env.update({layer_env_name(layer): "true" for layer in layers})
    elif services:
        env["BANNOU_SERVICES_ENABLED"] = "false"
    env.update({service_env_name(s): "true" for s in services})
    env["BANNOU_APP_ID"] = app_id
    env.update(spec.environment or {})
    node = replace(
        template,
        name=name,
        app_id=app_id,
        services=services,
        layers=layers,
        replicas=replicas,
        environment=env,
        mesh_enabled=bool(config.get("meshEnabled", True)),
    )
    mappings = {**t.mappings, **{s: app_id for s in services}}
    return replace(t, nodes=(*t.nodes, node), mappings=mappings)


def _template(t: Topology) -> Node:
    for n in t.bannou_nodes:
        if n.app_id == t.default_app_id:
            return n
    if not t.bannou_nodes:
        raise ChangeError(f"preset {t.preset!r} has no bannou node to model a new one on")
    return t.bannou_nodes[0]


def _is_enablement(key: str) -> bool:
    return (
        key.endswith("_SERVICE_ENABLED")
        or key == "BANNOU_SERVICES_ENABLED"
        or key.startswith("BANNOU_ENABLE_")
        or key in ("BANNOU_APP_ID", "BANNOU_NODE_NAME")
    )


def remove_node(t: Topology, name: str) -> Topology:
    node = _bannou_node(t, name)
    if len(t.bannou_nodes) == 1:
        raise ChangeError(
            f"node {name!r} is the last bannou node of preset {t.preset!r}; it cannot be removed"
        )
    others = [n for n in t.nodes if n.name != name]
    # its services fall back to the default route, unless another replica set has the same app id
    still = any(n.app_id == node.app_id for n in others if n.kind != "infrastructure")
    mappings = dict(t.mappings) if still else {s: a for s, a in t.mappings.items() if a != node.app_id}
    others = [replace(n, depends_on=tuple(d for d in n.depends_on if d != name)) for n in others]
    return replace(t, nodes=tuple(others), mappings=mappings)


def move_service(t: Topology, services: Sequence[str], target: str) -> Topology:
    """Move ``services`` to node ``target``: enabled there, disabled where they ran, mapped to
    the target's app id."""
    if not services:
        raise ChangeError("move-service needs services")
    to = _bannou_node(t, target)
    _check_services(t, services)
    for s in services:
        try:
            source = t.node_for(s)
        except KeyError:
            source = None
        if source is not None and source.name != to.name and source.kind != "infrastructure":
            env = {**source.environment, service_env_name(s): "false"}
            t = _replace_node(
                t, replace(source, services=tuple(x for x in source.services if x != s), environment=env)
            )
        to = _bannou_node(t, target)
        env = {**to.environment, service_env_name(s): "true"}
        t = _replace_node(t, replace(to, services=tuple(dict.fromkeys((*to.services, s))), environment=env))
    mappings = {**t.mappings, **{s: to.app_id for s in services}}
    return replace(t, mappings=mappings)


def _check_services(t: Topology, services: Sequence[str]) -> None:
    known = known_services(t)
    unknown = [s for s in services if s not in known]
    if unknown:
        raise ChangeError(
            f"unknown service(s) {', '.join(unknown)} in preset {t.preset!r};"
            f" known: {', '.join(sorted(known))}"
        )


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ChangeError(f"replicas must be a whole number >= 0, got {value!r}")
    return value


def scale(t: Topology, name: str, replicas: Any) -> Topology:
    node = _bannou_node(t, name)
    if replicas is None:
        raise ChangeError("scale needs replicas")
    return _replace_node(t, replace(node, replicas=_count(replicas)))


def update_env(t: Topology, name: str | None, environment: Mapping[str, Any]) -> Topology:
    """Merge ``environment`` into one node's (or, without nodeName, every bannou node's)."""
    if not environment:
        raise ChangeError("update-env needs environment (KEY=VALUE pairs)")
    env = _validated({"environment": environment}, EnvironmentChange, "environment").environment
    targets = [_bannou_node(t, name)] if name else list(t.bannou_nodes)
    for n in targets:
        t = _replace_node(t, replace(n, environment={**n.environment, **env}))
    return t


# --- configuration versions ---------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigVersion:
    """What one configuration version records, as bannou's orchestrator keeps it: its number,
    when it was applied (``timestamp``, epoch seconds), what changed in words (secrets masked)
    and the configuration keys that changed (names only, as ``ConfigurationChangedEvent`` sends
    them)."""

    version: int
    timestamp: float | None = None  # None: recorded by an older pytest-bannou
    changes: tuple[str, ...] = ()
    changed_keys: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "timestamp": self.timestamp,
            "changes": list(self.changes),
            "changedKeys": list(self.changed_keys),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConfigVersion:
        stamp = data.get("timestamp")
        return cls(
            int(data["version"]),
            float(stamp) if isinstance(stamp, int | float) else None,
            tuple(str(c) for c in data.get("changes") or ()),
            tuple(str(k) for k in data.get("changedKeys") or ()),
        )


@dataclass
class History:
    """Configuration versions of one environment: version 1 is the topology as deployed, every
    change after it (``update``, ``scale``, ``restart`` with new environment values, ``rollback``)
    is the next number. A rollback is a new version too, holding the configuration it returned to
    (bannou's ``/orchestrator/config/rollback``: the audit trail is kept, never truncated). The
    ``EnvironmentManager`` owns one per environment; ``bannou-env update``/``rollback`` continue
    it for kept environments. When the manager restores the environment to its preset for the
    next test it starts again at version 1 (the changes were that test's, not the next one's).

    ``versions`` keeps its (number, topology) pairs; ``details`` holds what each one records
    (a version appended without ``record`` simply has none)."""

    versions: list[tuple[int, Topology]] = field(default_factory=list)
    details: dict[int, ConfigVersion] = field(default_factory=dict)

    @classmethod
    def start(cls, topology: Topology, timestamp: float | None = None) -> History:
        """Version 1: ``topology`` as deployed at ``timestamp`` (default now)."""
        first = ConfigVersion(
            1, time.time() if timestamp is None else timestamp, (f"deploy {topology.preset}",)
        )
        return cls([(1, topology)], {1: first})

    @property
    def current(self) -> int:
        return self.versions[-1][0] if self.versions else 1

    @property
    def numbers(self) -> list[int]:
        return [v for v, _ in self.versions]

    def record(
        self, topology: Topology, changes: Sequence[str], timestamp: float | None = None
    ) -> ConfigVersion:
        """Append ``topology`` as the next version, with when and what changed; returns it."""
        previous = self.versions[-1][1] if self.versions else None
        entry = ConfigVersion(
            self.current + 1 if self.versions else 1,
            time.time() if timestamp is None else timestamp,
            tuple(mask_inline(c) for c in changes),
            tuple(changed_keys(previous, topology)) if previous is not None else (),
        )
        self.versions.append((entry.version, topology))
        self.details[entry.version] = entry
        return entry

    def detail(self, version: int) -> ConfigVersion:
        return self.details.get(version) or ConfigVersion(version)

    def topology(self, version: int) -> Topology:
        for number, topology in self.versions:
            if number == version:
                return topology
        raise KeyError(version)

    def rollback_target(self, version: int | None, where: str) -> int:
        """The version a rollback returns to: ``version``, or the one before the current
        (bannou's ``targetVersion`` default, currentVersion - 1). ``ChangeError`` naming the
        available versions for one that does not exist, is current, or when there is none
        before the first."""
        available = ", ".join(str(v) for v in self.numbers) or "1"
        if version is None:
            if len(self.versions) < 2:
                raise ChangeError(
                    f"{where} is at configuration version {self.current}, its first: nothing to roll back"
                )
            return self.versions[-2][0]
        if isinstance(version, bool) or not isinstance(version, int) or version not in self.numbers:
            raise ChangeError(
                f"{where} has no configuration version {version!r}; versions: {available}"
                f" (current {self.current})"
            )
        if version == self.current:
            raise ChangeError(f"{where} is at configuration version {version} already; versions: {available}")
        return version

    def lines(self) -> list[str]:
        """One line per version: number, time, what changed; the current one marked."""
        out = []
        for number in self.numbers:
            d = self.detail(number)
            stamp = (
                datetime.fromtimestamp(d.timestamp).strftime("%Y-%m-%d %H:%M:%S")
                if d.timestamp is not None
                else "(time not recorded)"
            )
            mark = "*" if number == self.current else " "
            what = "; ".join(d.changes) or "(not recorded)"
            out.append(f"{mark} {number:>3}  {stamp}  {what}{'  (current)' if mark == '*' else ''}")
        return out


def changed_keys(old: Topology, new: Topology) -> list[str]:
    """The configuration keys that differ between two versions, names only (never values):
    ``nodes.NODE`` (added or removed), ``nodes.NODE.replicas``, ``nodes.NODE.services``,
    ``nodes.NODE.environment.KEY`` and ``mappings.SERVICE``; scoped by prefix, as bannou's
    ``ConfigurationChangedEvent.changedKeys`` are."""
    keys: list[str] = []
    before = {n.name: n for n in old.nodes}
    after = {n.name: n for n in new.nodes}
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        if a is None or b is None:
            keys.append(f"nodes.{name}")
            continue
        if a.replicas != b.replicas:
            keys.append(f"nodes.{name}.replicas")
        if a.services != b.services:
            keys.append(f"nodes.{name}.services")
        env_keys = set(a.environment) | set(b.environment)
        keys += [
            f"nodes.{name}.environment.{k}"
            for k in sorted(env_keys)
            if a.environment.get(k) != b.environment.get(k)
        ]
    services = set(old.mappings) | set(new.mappings)
    keys += [f"mappings.{s}" for s in sorted(services) if old.mappings.get(s) != new.mappings.get(s)]
    return keys


def recreated(old: Topology, new: Topology) -> list[tuple[Node, dict[str, str]]]:
    """The bannou nodes going from ``old`` to ``new`` restarts (recreates), each with the
    environment values that changed."""
    out = []
    for c in diff(old, new).changes:
        if c.action is not Action.RECREATE or c.old is None or c.new is None:
            continue
        if c.new.kind != "infrastructure":
            before = c.old.environment
            out.append((c.new, {k: v for k, v in c.new.environment.items() if before.get(k) != v}))
    return out


def announce(messaging: Any, entry: ConfigVersion, old: Topology | None, new: Topology) -> None:
    """Tell the environment's consumers, as bannou's orchestrator does: a ServiceRestartEvent
    for each node the change from ``old`` recreated (none when ``old`` is None), then a
    ConfigurationChangedEvent with the new version. ``messaging`` is the manager's
    ``EnvMessaging`` (silent for environments without a broker)."""
    if old is not None:
        reason = f"configuration version {entry.version}: {'; '.join(entry.changes)}"
        for node, new_env in recreated(old, new):
            messaging.restarted(node, reason, new_env)
    messaging.configuration_changed(entry.version, list(entry.changed_keys))


# --- JSON (run state for the CLI) ------------------------------------------------------------------


def save_history(workdir: Path, history: History) -> None:
    """Configuration versions in the run directory's live state (read by ``bannou-env update``);
    0600 in a 0700 directory, as it holds the environment's settings. ``history`` keeps its
    [number, topology] pairs (what older versions read); ``config_versions`` adds when and what."""
    data = read_state(workdir)
    data["history"] = [[v, topology_to_json(t)] for v, t in history.versions]
    data["config_versions"] = [history.details[v].to_json() for v in history.numbers if v in history.details]
    ensure_run_directory(workdir)
    atomic_write(workdir / LIVE_STATE, json.dumps(data, indent=1, sort_keys=True))


def load_history(workdir: Path) -> History | None:
    """The recorded versions (files of older versions have no ``config_versions``: their
    versions show without time and changes)."""
    data = read_state(workdir)
    raw = data.get("history")
    if not raw:
        return None
    history = History([(int(v), topology_from_json(t)) for v, t in raw])
    for item in data.get("config_versions") or ():
        with contextlib.suppress(KeyError, TypeError, ValueError):
            entry = ConfigVersion.from_json(item)
            history.details[entry.version] = entry
    return history


def topology_to_json(t: Topology) -> dict[str, Any]:
    return {
        "preset": t.preset,
        "nodes": [n.spec() for n in t.nodes],
        "mappings": dict(t.mappings),
        "default_app_id": t.default_app_id,
        "preset_hash": t.preset_hash,
        "source": t.source,
    }


def topology_from_json(data: Mapping[str, Any]) -> Topology:
    nodes = []
    for d in data["nodes"]:
        hc = d.get("healthcheck")
        if hc is not None:
            target = hc.get("target")
            hc = HealthCheck(**{**hc, "target": tuple(target) if isinstance(target, list) else target})
        res = d.get("resources")
        nodes.append(
            Node(
                name=d["name"],
                app_id=d["app_id"],
                kind=d["kind"],
                services=tuple(d["services"]),
                layers=tuple(d["layers"]),
                replicas=d["replicas"],
                environment=dict(d["environment"]),
                image=d["image"],
                command=tuple(d["command"]) if d["command"] is not None else None,
                ports=tuple(d["ports"]),
                volumes=tuple(d["volumes"]),
                healthcheck=hc,
                depends_on=tuple(d["depends_on"]),
                resources=Resources(**res) if res else None,
                mesh_enabled=d["mesh_enabled"],
                infra_type=d["infra_type"],
                version=d["version"],
            )
        )
    return Topology(
        preset=data["preset"],
        nodes=tuple(nodes),
        mappings=dict(data["mappings"]),
        default_app_id=data["default_app_id"],
        preset_hash=data.get("preset_hash", ""),
        source=data.get("source", ""),
    )
