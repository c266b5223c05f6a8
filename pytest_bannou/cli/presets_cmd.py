"""``bannou-env presets``: list, show, validate and describe (JSON Schema) presets."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from .._support.masking import mask_data, mask_text, topology_secrets
from ..errors import PresetError
from ..preset import PresetLibrary, json_schema, load_file, resolve
from ..topology.model import Node, Topology, jsonable
from ._args import add_presets_dir, pairs, preset_library, replica_counts


def register(subparsers: argparse._SubParsersAction) -> None:
    presets = subparsers.add_parser("presets", help="list, show, validate presets; print their JSON Schema")
    sub = presets.add_subparsers(dest="presets_command", metavar="SUBCOMMAND")
    sub.required = True

    def with_dirs(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        add_presets_dir(p)
        return p

    ls = with_dirs(sub.add_parser("list", help="every preset on the search path"))
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(handler=_list)

    show = with_dirs(sub.add_parser("show", help="the resolved topology of a preset"))
    show.add_argument("name", metavar="NAME", help="preset name (or a path to a preset file)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment override for every bannou node (repeatable)",
    )
    show.add_argument(
        "--replicas",
        action="append",
        default=[],
        metavar="NODE=N",
        help="replica override for one node (repeatable)",
    )
    show.set_defaults(handler=_show)

    validate = with_dirs(
        sub.add_parser(
            "validate",
            help="check preset files or names; one FILE:LINE:COL: message line per error",
            description="Exit status 0 when every preset is valid, 1 otherwise.",
        )
    )
    validate.add_argument(
        "targets",
        nargs="+",
        metavar="PATH_OR_NAME",
        help="a preset file, a directory of presets, or a preset name",
    )
    validate.set_defaults(handler=_validate)

    schema = sub.add_parser("schema", help="print the JSON Schema of the preset format (for editors)")
    schema.set_defaults(handler=_schema)


def library(args: argparse.Namespace, *extra: Path) -> PresetLibrary:
    """Search path: extra dirs, --presets-dir, BANNOU_PRESETS_DIR or the project's
    bannou_presets_dir, then the built-in library."""
    # the directory of a file that does not exist: loading the file says so, not the search path
    return preset_library(args.presets_dir, *(d for d in extra if d.is_dir()))


def _is_path(target: str) -> bool:
    if os.sep in target or "/" in target or target.endswith((".yaml", ".yml")):
        return True
    try:
        return Path(target).is_dir()
    except (OSError, ValueError):  # too long, NUL: not a directory; the name check says why
        return False


def _list(args: argparse.Namespace) -> int:
    lib = library(args)
    rows: list[dict[str, Any]] = []
    status = 0
    for name in lib.names():
        path = lib.path(name)
        try:
            p = lib.load(name)
            rows.append(
                {
                    "name": name,
                    "category": p.category or "",
                    "description": p.description,
                    "source": str(path),
                    "hash": p.hash,
                    "valid": True,
                }
            )
        except PresetError as exc:
            status = 1
            rows.append(
                {
                    "name": name,
                    "category": "",
                    "source": str(path),
                    "hash": "",
                    "valid": False,
                    "description": f"INVALID ({len(exc.problems)} problem(s)): bannou-env presets "
                    f"validate {path}",
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return status
    if not rows:
        print("no presets found in: " + ", ".join(str(d) for d in lib.directories))
        return status
    width = max(len(r["name"]) for r in rows)
    cat_width = max(8, *(len(r["category"]) for r in rows))
    print(f"{'NAME':<{width}}  {'CATEGORY':<{cat_width}}  {'HASH':<16}  DESCRIPTION / SOURCE")
    for r in rows:
        print(
            f"{r['name']:<{width}}  {r['category']:<{cat_width}}  {r['hash'] or '-':<16}  {r['description']}"
        )
        print(f"{'':<{width}}  {'':<{cat_width}}  {'':<16}  {r['source']}")
    return status


def _show(args: argparse.Namespace) -> int:
    env = pairs(args.env, "--env")
    replicas = replica_counts(args.replicas)
    if _is_path(args.name):
        path = Path(args.name)
        preset = load_file(path, library=library(args, path.parent))
    else:
        preset = library(args).load(args.name)
    topo = resolve(preset, environment=env, replicas=replicas)
    pools = [pool.model_dump(by_alias=True) for pool in preset.processing_pools or ()]
    secrets = topology_secrets([topo])  # secret-looking environment values are never printed
    if args.json:
        print(json.dumps(mask_data({**topology_dict(topo), "processing_pools": pools}, secrets), indent=2))
    else:
        print(mask_text(render(topo), secrets))
        for pool in pools:
            print(
                f"processing pool {pool['poolType']} (plugin {pool['plugin'] or '-'}): "
                f"{pool['minInstances']}-{pool['maxInstances']} instances"
            )
    return 0


def topology_dict(topo: Topology) -> dict[str, Any]:
    """A JSON-able view of a resolved topology (also used by other commands' --json)."""
    return {
        "preset": topo.preset,
        "source": topo.source,
        "hash": topo.preset_hash,
        "required_backends": list(topo.required_backends),
        "default_app_id": topo.default_app_id,
        "mappings": dict(topo.mappings),
        "nodes": [n.spec() for n in topo.nodes],
        "testers": [
            {**jsonable(t), "environment": dict(t.environment)}  # type: ignore[dict-item]
            for t in topo.testers
        ],
    }


def _node_lines(n: Node) -> list[str]:
    lines = [f"  {n.name} ({n.kind}, app id {n.app_id}, replicas {n.replicas})"]
    lines.append(f"    image: {n.image or '-'}")
    if n.command is not None:
        lines.append(f"    command: {' '.join(n.command)}")
    if n.services:
        lines.append(f"    services: {', '.join(n.services)}")
    if n.layers:
        lines.append(f"    layers: {', '.join(n.layers)}")
    if not n.services and n.kind == "bannou":
        lines.append("    services: (all)")
    lines.append(f"    ports: {', '.join(map(str, n.ports)) or '-'}")
    if n.depends_on:
        lines.append(f"    depends on: {', '.join(n.depends_on)}")
    if n.healthcheck:
        h = n.healthcheck
        target = " ".join(h.target) if isinstance(h.target, tuple) else h.target
        lines.append(f"    healthcheck: {h.kind} {target} (every {h.interval:g}s, {h.retries} retries)")
    if n.environment:
        lines.append("    environment:")
        lines += [f"      {k}={v}" for k, v in sorted(n.environment.items())]
    return lines


def render(topo: Topology) -> str:
    lines = [f"preset {topo.preset}  (hash {topo.preset_hash})", f"source: {topo.source or '-'}"]
    if topo.required_backends:
        lines.append(f"required backends: {', '.join(topo.required_backends)}")
    lines.append("nodes:" if topo.nodes else "nodes: (none)")
    for n in topo.nodes:
        lines += _node_lines(n)
    lines.append(f"mappings (default app id {topo.default_app_id}):")
    lines += [f"  {svc} -> {app}" for svc, app in sorted(topo.mappings.items())] or ["  (none)"]
    for t in topo.testers:
        how = f"image {t.image}" if t.image else " ".join(t.command or ())
        lines.append(f"tester {t.name} ({t.format}): {how}")
    return "\n".join(lines)


def _validate(args: argparse.Namespace) -> int:
    status = 0
    for target in args.targets:
        try:
            files: list[Path | str]
            if Path(target).is_dir():
                files = sorted(f for f in Path(target).iterdir() if f.suffix in (".yaml", ".yml"))
            elif _is_path(target):
                files = [Path(target)]
            else:
                files = [target]
        except OSError as exc:
            print(f"{target}: cannot read: {exc.strerror or exc}")
            status = 1
            continue
        for f in files:
            try:
                if isinstance(f, Path):
                    load_file(f, library=library(args, f.parent))
                    print(f"{f}: ok")
                else:
                    lib = library(args)
                    lib.load(f)
                    print(f"{lib.path(f)}: ok")
            except PresetError as exc:
                status = 1
                for problem in exc.problems:
                    print(problem)
    return status


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2))
    return 0
