"""Validation of a normalized preset tree: pydantic errors mapped back to YAML positions,
plus the cross-field checks a schema cannot express (duplicate nodes, one service on two
nodes, unknown backends, dangling references). Every finding is a ``Problem``."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from ..errors import Location, Problem
from ..topology import contract as registry
from .normalize import display
from .schema import KNOWN_INFRA, LAYERS, TESTER_FORMATS, PresetSpec
from .yamlpos import PosDict, PosList, plain

_NAME_RULE = "use letters, digits, '-', '_' and '.', starting with a letter or digit"


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
    expected = msg.removeprefix("Input should be ")
    shown = _shorten(got)
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
    return problems


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
