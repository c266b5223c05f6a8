"""``bannou-env render PRESET --backend compose|swarm|kubernetes``: print the file that runs a
preset by hand (any backend that implements ``Backend.render``, third-party ones included).

compose: ``docker compose -f FILE up -d --wait`` runs the same project the Compose backend deploys.
swarm: ``docker stack deploy --resolve-image never -c FILE RUN_ID`` runs the Swarm backend's services.
kubernetes: ``kubectl apply -f FILE`` creates the namespace, Deployments and Services the
Kubernetes backend creates.
Every file carries a run id (a new one unless ``--run-id`` names one): its resources are labelled
with it and its project, stack and namespace names follow it, so two hand runs do not collide and
``bannou-env clean --run-id RUN_ID`` removes what one left; the file's first lines say so.
Images the plugin builds on this host (``python -m pytest_bannou.backends.docker.images``:
stand-ins, recognised by their labels when the engine is reachable, else by what that module
would build here) are written never to be pulled, with their read-only host mounts and tmpfs;
every other image (``mysql:8.0``, ``openresty/...``) as a user would write it: image,
environment, ports, healthcheck, dependencies, no pull policy, no host mounts.
``--no-stand-ins`` writes every image that way, for a machine with a registry.
The file holds the preset's values as they are, secrets included (it must run as it is):
``-o FILE`` writes it readable by its owner only (0600).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .._support.files import atomic_write
from ..backends import registry
from ..backends.base import RENDER_STAND_INS, BackendOptions
from ..environment.runs import new_run_id
from ._args import (
    add_backend_options,
    add_presets_dir,
    backend_options,
    pairs,
    preset_library,
    replica_counts,
    run_id_arg,
)
from ._output import unwritable

BACKENDS = ("compose", "swarm", "kubernetes")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "render",
        help="print the compose file, swarm stack file or Kubernetes manifests of a preset",
        description="Print the file a Docker backend deploys for PRESET, to run it by hand.",
    )
    p.add_argument("preset", metavar="PRESET")
    p.add_argument(
        "--backend",
        default="compose",
        metavar="NAME",
        help=f"{', '.join(BACKENDS)} or a third-party backend that renders files (default: compose)",
    )
    add_backend_options(p)  # e.g. kubernetes_service_type=NodePort
    add_presets_dir(p)
    p.add_argument(
        "--run-id",
        type=run_id_arg,
        default=None,
        metavar="RUN_ID",
        help="the run id the file's resources are labelled with, as `bannou-env clean --run-id` takes"
        " it (default: a new one, written in the file's first lines)",
    )
    p.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="environment override (repeatable)"
    )
    p.add_argument(
        "--replicas", action="append", default=[], metavar="NODE=N", help="replica override (repeatable)"
    )
    p.add_argument(
        "--stand-ins",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write the images this host builds (python -m pytest_bannou.backends.docker.images) as "
        "local stand-ins: never pulled, host mounts; the file then runs on this host only (default). "
        "--no-stand-ins: every image as a public one, for a machine with a registry",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    p.set_defaults(handler=_render)


def _render(args: argparse.Namespace) -> int:
    topology = preset_library(args.presets_dir).resolve(
        args.preset, environment=pairs(args.env, "--env"), replicas=replica_counts(args.replicas)
    )
    extra = {**backend_options(args.backend_options), RENDER_STAND_INS: "true" if args.stand_ins else "false"}
    run_id = args.run_id or new_run_id()
    options = BackendOptions(run_id=run_id, workdir=Path.cwd(), extra=extra)

    def warn(message: str) -> None:
        print(f"bannou-env render: {message}", file=sys.stderr)

    text = registry.load(args.backend).render(topology, options, warn)
    if registry.canonical(args.backend) in HAND_RUN:  # YAML: comment lines are part of the file
        text = header(args, run_id) + text
    else:  # a third-party backend's format may have no comments: say it beside the file
        warn(f"run id {run_id}: remove what the file runs with `bannou-env clean --run-id {run_id}`")
    _write(args, text)
    return 0


# how a rendered file is run and removed by hand, per backend (FILE: where it was written)
HAND_RUN = {
    "compose": ("docker compose -f {file} up -d --wait", "docker compose -f {file} down -v"),
    "swarm": ("docker stack deploy --resolve-image never -c {file} {run_id}", "docker stack rm {run_id}"),
    "kubernetes": ("kubectl apply -f {file}", "kubectl delete -f {file}"),
}


def header(args: argparse.Namespace, run_id: str) -> str:
    """The comment lines the file starts with: what it is, its run id, how to run and remove it."""
    file = shlex.quote(args.output) if args.output and args.output.isprintable() else "FILE"
    run, remove = (c.format(file=file, run_id=run_id) for c in HAND_RUN[registry.canonical(args.backend)])
    lines = [
        f"# rendered by `bannou-env render {args.preset} --backend {args.backend}`",
        f"# run id {run_id}: remove what it runs with `bannou-env clean --run-id {run_id}`",
        f"# run: {run}; remove: {remove}",
    ]
    return "".join(f"{line}\n" for line in lines)


def _write(args: argparse.Namespace, text: str) -> None:
    if args.output:
        try:  # 0600: a rendered file holds the preset's secrets in clear, to run as it is
            atomic_write(args.output, text, mode=0o600)
        except OSError as exc:
            fix = "pass -o a file path in a writable directory, or leave -o out to print"
            raise unwritable("the rendered file", args.output, exc, fix, Path(args.output).parent) from None
    else:
        sys.stdout.write(text)
