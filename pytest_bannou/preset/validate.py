"""Validation of a normalized preset tree: pydantic errors mapped back to YAML positions,
plus the cross-field checks a schema cannot express (duplicate nodes, one service on two
nodes, unknown backends, dangling references). Every finding is a ``Problem``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from ..errors import Location, Problem
from ..topology import contract as registry
from ..topology.model import HTTP_PORT_IN_CONTAINER
from .normalize import display, normalize
from .resolve import INFRA_PORTS
from .schema import KNOWN_INFRA, LAYERS, TESTER_FORMATS, PresetSpec
from .yamlpos import PosDict, PosList, plain

_NAME_RULE = "use letters, digits, '-', '_' and '.', starting with a letter or digit"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def schema_problems(tree: PosDict, model: type = PresetSpec) -> tuple[Any, list[Problem]]:
    """(validated model or None, problems) for a normalized tree."""
    try:
        return model.model_validate(plain(tree)), []
    except ValidationError as exc:
        problems = []
        seen = set()
        for err in exc.errors(include_url=False):
            problem = _problem(tree, err)
            if (problem.location, problem.message) not in seen:
                seen.add((problem.location, problem.message))
                problems.append(problem)
        return None, problems


def _locate(tree: PosDict, loc: Iterable[Any]) -> tuple[Location, list[str], bool]:
    """The deepest existing position along ``loc``; the field path walked; whether it ended on a key."""
    where = tree.loc
    cur: Any = tree
    path: list[str] = []
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            where = cur.val_loc.get(part, where)
            path.append(str(part))
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            where = cur.val_loc[part] if part < len(cur.val_loc) else where
            item = cur[part]
            name = item.get("name", item.get("pool_type")) if isinstance(item, dict) else None
            path.append(f"[{name}]" if isinstance(name, str) else f"[{part}]")
            cur = item
        elif part == "[key]" and path:
            return where, path, True
        elif isinstance(cur, dict) and isinstance(part, str):
            path.append(part)  # a missing field: report at its container
            break
    return where, path, False


def _label(path: list[str]) -> str:
    """``['topology', 'nodes', '[0]', 'replicas']`` -> ``topology.nodes[0].replicas`` (camelCase)."""
    out = ""
    for i, part in enumerate(path):
        if part.startswith("["):
            out += part
        else:
            env_key = i > 0 and path[i - 1] == "environment"
            out += ("." if out else "") + (part if env_key else display(part))
    return out


def _problem(tree: PosDict, err: dict) -> Problem:
    loc = tuple(err.get("loc", ()))
    where, path, on_key = _locate(tree, loc)
    field = path[-1] if path else ""
    label = _label(path) or "preset"
    kind = err.get("type", "")
    got = err.get("input")
    msg = err.get("msg", "invalid value")
    if kind == "missing":
        return Problem(where, f"missing required key `{display(field)}` in `{_label(path[:-1]) or 'preset'}`")
    if kind == "literal_error" and (field == "layers" or (len(path) > 1 and path[-2] == "layers")):
        return Problem(where, f"unknown layer {got!r}; known layers: {', '.join(LAYERS)}")
    if kind == "literal_error" and field == "format":
        return Problem(where, f"unknown tester format {got!r}; known formats: {', '.join(TESTER_FORMATS)}")
    if kind == "string_pattern_mismatch":
        return Problem(where, f"`{label}`: invalid name {got!r}: {_NAME_RULE}")
    if kind == "value_error":
        text = msg.removeprefix("Value error, ")
        return Problem(where, f"`{label}`: {text}")
    if on_key:
        return Problem(where, f"`{label}`: keys must be strings: {msg}")
    shown = _shorten(got)
    if not msg.startswith("Input should be "):  # "String should have at most 63 characters"
        return Problem(where, f"`{label}`: {msg[:1].lower()}{msg[1:]}, got {shown}")
    expected = msg.removeprefix("Input should be ")
    return Problem(where, f"`{label}` should be {expected}, got {shown}")


def _shorten(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@lru_cache(maxsize=1)
def known_backends() -> frozenset[str]:
    return frozenset(registry.known_names())


def semantic_problems(tree: PosDict) -> list[Problem]:
    """Checks across fields; defensive about types because the schema may have failed too."""
    problems: list[Problem] = []
    topology = tree.get("topology")
    nodes = topology.get("nodes") if isinstance(topology, PosDict) else None
    infra = topology.get("infrastructure") if isinstance(topology, PosDict) else None
    infra_names = set(infra) if isinstance(infra, PosDict) else set()
    node_names: set[str] = set()
    if isinstance(nodes, PosList):
        if not nodes:
            problems.append(
                Problem(
                    topology.val_loc["nodes"],
                    "`topology.nodes` is empty: add at least one node "
                    "(or leave `topology` out for a preset without nodes)",
                )
            )
        node_names = _check_nodes(nodes, infra_names, problems)
    _check_backends(tree, problems)
    _check_infra(infra, problems)
    _check_testers(tree, node_names, problems)
    text_problems(tree, [], problems)
    return problems


# --- what would only fail later, in a backend: checked on every part of a preset -----------------


def text_problems(data: Any, path: list[str], problems: list[Problem], where: Location | None = None) -> None:
    """NUL in any string (no process, file, label or environment can carry it) and environment
    keys that no environment can hold (empty, ``=``, NUL), each at its own position."""
    if isinstance(data, PosDict):
        is_env = bool(path) and path[-1] == "environment"
        for key, value in data.items():
            if is_env:
                _check_env_key(key, data.key_loc.get(key, data.loc), problems)
            text_problems(value, [*path, str(key)], problems, data.val_loc.get(key, data.loc))
    elif isinstance(data, PosList):
        for i, item in enumerate(data):
            name = item.get("name", item.get("pool_type")) if isinstance(item, dict) else None
            part = f"[{name}]" if isinstance(name, str) else f"[{i}]"
            loc = data.val_loc[i] if i < len(data.val_loc) else data.loc
            text_problems(item, [*path, part], problems, loc)
    elif isinstance(data, str) and "\x00" in data:
        problems.append(
            Problem(
                where or Location("<preset>"),
                f"`{_label(path) or 'value'}` contains a NUL character (\\0), which no process, file "
                "or environment variable can carry; remove it",
            )
        )


def _check_env_key(key: Any, where: Location, problems: list[Problem]) -> None:
    if not isinstance(key, str):
        return  # reported by the schema
    if not key:
        problems.append(Problem(where, "environment key '' is empty: give the variable a name"))
    elif "=" in key:
        problems.append(
            Problem(where, f"environment key {key!r} contains `=`, which ends a variable's name: rename it")
        )
    elif "\x00" in key:
        problems.append(Problem(where, f"environment key {key!r} contains a NUL character: rename it"))


def _port_values(value: Any) -> list[tuple[int, Location | None]] | None:
    """The ports of a ``ports`` value with their positions; ``None`` if it is not readable
    (the schema reports that)."""
    items: list[tuple[Any, Location | None]]
    if isinstance(value, PosList):
        items = [(v, value.val_loc[i] if i < len(value.val_loc) else None) for i, v in enumerate(value)]
    elif isinstance(value, PosDict):
        items = [(value[k], value.val_loc.get(k)) for k in ("http", "https") if value.get(k) is not None]
    else:
        items = [(value, None)]
    out = []
    for v, loc in items:
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            return None
        out.append((v, loc))
    return out


def check_node(node: PosDict, name: str, kind: str, problems: list[Problem]) -> None:
    """One node's (``kind`` "node") or infrastructure service's own consistency: each port once,
    a ``tcp:`` probe on a port it lists, no dependency on itself."""
    label = f"{kind} `{name}`"
    given = node.get("ports")
    if given is None:
        ports = [
            (p, None)
            for p in (INFRA_PORTS.get(name, ()) if kind == "infrastructure" else (HTTP_PORT_IN_CONTAINER,))
        ]
    else:
        ports = _port_values(given)
    if ports is not None:
        seen: set[int] = set()
        for port, loc in ports:
            if port in seen:
                problems.append(
                    Problem(
                        loc or node.val_loc["ports"], f"port {port} is listed twice on {label}; list it once"
                    )
                )
            seen.add(port)
        health = node.get("healthcheck")
        tcp = health.get("tcp") if isinstance(health, PosDict) else None
        if isinstance(tcp, int) and not isinstance(tcp, bool) and tcp not in seen:
            listed = ", ".join(str(p) for p, _ in ports) or "none"
            problems.append(
                Problem(
                    health.val_loc["tcp"],
                    f"healthcheck `tcp: {tcp}` probes a port {label} does not list (ports: {listed}); "
                    "add it to `ports` or probe one of those",
                )
            )
    deps = node.get("depends_on")
    if isinstance(deps, PosList):
        for j, dep in enumerate(deps):
            if dep == name:
                problems.append(
                    Problem(
                        deps.val_loc[j], f"{label} depends on itself; remove {name!r} from its `dependsOn`"
                    )
                )


def validate_plain(data: Any, model: type, file: str) -> tuple[Any, list[Problem]]:
    """Plain data (a live change's ``nodeConfig`` or environment) checked the way the same part of a
    preset file is: spellings, schema, text rules and, for a node, its own consistency. Every
    position is ``file`` (there is no file); returns (validated model or None, problems)."""
    problems: list[Problem] = []
    tree = normalize(from_plain(data, Location(file)), model, problems, "")
    if not isinstance(tree, PosDict):
        return None, [Problem(Location(file), f"must be an object, got {_shorten(data)}")]
    spec, found = schema_problems(tree, model)
    problems += found
    text_problems(tree, [], problems)
    name = tree.get("name")
    if isinstance(name, str) and "depends_on" in model.model_fields:
        check_node(tree, name, "node", problems)
    return (spec if not problems else None), problems


def from_plain(data: Any, loc: Location) -> Any:
    """Plain dicts and lists -> Pos containers, every position ``loc``."""
    if isinstance(data, dict):
        out = PosDict(loc)
        for key, value in data.items():
            out[key] = from_plain(value, loc)
            out.key_loc[key] = out.val_loc[key] = loc
        return out
    if isinstance(data, list | tuple):
        out_list = PosList(loc)
        for value in data:
            out_list.append(from_plain(value, loc))
            out_list.val_loc.append(loc)
        return out_list
    return data


def _check_nodes(nodes: PosList, infra_names: set[str], problems: list[Problem]) -> set[str]:
    first: dict[str, Location] = {}
    hosts: dict[str, list[tuple[str, Any, Location]]] = {}
    for i, node in enumerate(nodes):
        if not isinstance(node, PosDict):
            continue
        name = node.get("name")
        if not isinstance(name, str):
            continue
        where = node.val_loc.get("name", nodes.val_loc[i])
        if name in first:
            problems.append(
                Problem(
                    where,
                    f"duplicate node name {name!r} (first defined at line {first[name].line}); "
                    "node names must be unique",
                )
            )
            continue
        first[name] = where
        check_node(node, name, "node", problems)
        if name in infra_names:
            problems.append(
                Problem(
                    where, f"node {name!r} has the same name as an infrastructure service; rename the node"
                )
            )
        services = node.get("services")
        if isinstance(services, PosList):
            seen_here: set[str] = set()
            for j, svc in enumerate(services):
                if isinstance(svc, str) and svc not in seen_here:
                    seen_here.add(svc)
                    hosts.setdefault(svc, []).append((name, node.get("app_id"), services.val_loc[j]))
    for svc, where_list in hosts.items():
        if len(where_list) < 2:
            continue
        app_ids = {a for _, a, _ in where_list}
        if len(app_ids) == 1 and None not in app_ids:
            continue  # every node routes it under the same explicit appId
        names = " and ".join(repr(n) for n, _, _ in where_list)
        problems.append(
            Problem(
                where_list[1][2],
                f"service {svc!r} is listed on nodes {names} without an explicit "
                "appId route: a service is routed to one app id; remove it from all but one node, "
                "or give those nodes the same `appId`",
            )
        )
    all_names = set(first) | infra_names
    for node in nodes:
        if isinstance(node, PosDict) and isinstance(node.get("depends_on"), PosList):
            deps = node["depends_on"]
            for j, dep in enumerate(deps):
                if isinstance(dep, str) and dep not in all_names:
                    problems.append(
                        Problem(
                            deps.val_loc[j],
                            f"`dependsOn` names {dep!r}, which is neither a node nor "
                            "an infrastructure service of this preset; known: "
                            + ", ".join(sorted(all_names)),
                        )
                    )
    return set(first)


def _check_backends(tree: PosDict, problems: list[Problem]) -> None:
    backends = tree.get("required_backends")
    if not isinstance(backends, PosList):
        return
    known = known_backends()
    for i, b in enumerate(backends):
        if isinstance(b, str) and registry.canonical(b) not in known:
            problems.append(
                Problem(
                    backends.val_loc[i],
                    f"unknown backend {b!r} in `requiredBackends`; known backends: "
                    f"{', '.join(sorted(known))} (aliases: docker-compose, docker-swarm)",
                )
            )


def _check_infra(infra: Any, problems: list[Problem]) -> None:
    if not isinstance(infra, PosDict):
        return
    for name, spec in infra.items():
        if not _NAME.fullmatch(name) or len(name) > 63:
            problems.append(
                Problem(
                    infra.key_loc[name],
                    f"`topology.infrastructure`: invalid name {name!r}: {_NAME_RULE}, at most 63 characters",
                )
            )
            continue
        if isinstance(spec, PosDict):
            check_node(spec, name, "infrastructure", problems)
        if name in KNOWN_INFRA or not isinstance(spec, PosDict):
            continue
        if not spec.get("image"):
            problems.append(
                Problem(
                    infra.key_loc[name],
                    f"infrastructure {name!r} is not one of {', '.join(KNOWN_INFRA)}: give it an `image`",
                )
            )


def _check_testers(tree: PosDict, node_names: set[str], problems: list[Problem]) -> None:
    testers = tree.get("testers")
    if not isinstance(testers, PosList):
        return
    seen: dict[str, int] = {}
    for i, t in enumerate(testers):
        if not isinstance(t, PosDict):
            continue
        name = t.get("name")
        if isinstance(name, str):
            if name in seen:
                problems.append(
                    Problem(t.val_loc.get("name", testers.val_loc[i]), f"duplicate tester name {name!r}")
                )
            seen[name] = i
        target = t.get("target")
        if isinstance(target, str) and target not in node_names:
            problems.append(
                Problem(
                    t.val_loc["target"],
                    f"tester target {target!r} is not a node of this preset; "
                    f"nodes: {', '.join(sorted(node_names)) or '(none)'}",
                )
            )
