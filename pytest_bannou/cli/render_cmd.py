"""``bannou-env render PRESET --backend compose|swarm|kubernetes``: print the file that runs a
preset by hand.

compose: ``docker compose -f FILE up -d`` runs the same project the Compose backend deploys.
swarm: ``docker stack deploy -c FILE NAME`` runs the services the Swarm backend creates.
kubernetes: ``kubectl apply -f FILE`` creates the namespace, Deployments and Services the
Kubernetes backend creates.
Read-only host mounts of the locally built images come from the engine when it is reachable,
else from what ``pytest_bannou.backends.docker.images`` would build.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from ..backends.base import LABEL_OWNER_PID, BackendOptions
from ..backends.docker import engine as _docker
from ..errors import BannouError
from ._args import add_presets_dir, pairs, preset_library, replica_counts
from ._output import unwritable

BACKENDS = ("compose", "swarm", "kubernetes")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "render",
        help="print the compose file, swarm stack file or Kubernetes manifests of a preset",
        description="Print the file a Docker backend deploys for PRESET, to run it by hand.",
    )
    p.add_argument("preset", metavar="PRESET")
    p.add_argument("--backend", choices=BACKENDS, default="compose", help="default: compose")
    add_presets_dir(p)
    p.add_argument("--run-id", default="manual", metavar="RUN_ID", help="run id label (default: manual)")
    p.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="environment override (repeatable)"
    )
    p.add_argument(
        "--replicas", action="append", default=[], metavar="NODE=N", help="replica override (repeatable)"
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    p.set_defaults(handler=_render)


def _without_owner(obj: Any) -> Any:
    """Drop the owner labels: a file run by hand has no owning session, so ``clean
    --all-stale`` must leave it alone (``clean --run-id`` still finds it)."""
    if isinstance(obj, dict):
        owner = (_docker.LABEL_OWNER_HOST, LABEL_OWNER_PID)
        return {k: _without_owner(v) for k, v in obj.items() if k not in owner}
    if isinstance(obj, list):
        return [_without_owner(v) for v in obj]
    return obj


def _render(args: argparse.Namespace) -> int:
    from ..backends.docker import images

    topology = preset_library(args.dir).resolve(
        args.preset, environment=pairs(args.env, "--env"), replicas=replica_counts(args.replicas)
    )
    options = BackendOptions(run_id=args.run_id, workdir=Path.cwd())
    if args.backend == "kubernetes":
        from ..backends.kubernetes import backend as kubernetes

        docs = _without_owner(kubernetes.render_manifests(topology, options))
        _write(args, yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False))
        return 0

    infos = images.known_infos()
    try:
        cli = _docker.client(timeout=5)
    except BannouError:
        print(
            "bannou-env render: no Docker Engine reachable; host mounts as images.py would build them",
            file=sys.stderr,
        )
    else:
        try:
            for node in topology.nodes:
                name = _docker.image_for(node)
                info = _docker.image_info(cli, name)
                if info is not None:
                    infos[name] = info
        finally:
            cli.close()

    if args.backend == "compose":
        from ..backends.docker import compose

        doc = compose.render(topology, options, compose.project_name(options, topology), infos)
    else:
        from ..backends.docker import swarm

        doc = swarm.render_stack(topology, options, swarm.name_prefix(options, topology), infos)
    from ..backends.docker.compose_file import render_text

    _write(args, render_text(_without_owner(doc)))
    return 0


def _write(args: argparse.Namespace, text: str) -> None:
    if args.output:
        try:
            Path(args.output).write_text(text)
        except OSError as exc:
            fix = "pass -o a file path in a writable directory, or leave -o out to print"
            raise unwritable("the rendered file", args.output, exc, fix, Path(args.output).parent) from None
    else:
        sys.stdout.write(text)
