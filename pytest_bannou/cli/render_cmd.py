"""``bannou-env render PRESET --backend compose|swarm|kubernetes``: print the file that runs a
preset by hand (any backend that implements ``Backend.render``, third-party ones included).

compose: ``docker compose -f FILE up -d`` runs the same project the Compose backend deploys.
swarm: ``docker stack deploy -c FILE NAME`` runs the services the Swarm backend creates.
kubernetes: ``kubectl apply -f FILE`` creates the namespace, Deployments and Services the
Kubernetes backend creates.
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
import sys
from pathlib import Path

from .._support.files import atomic_write
from ..backends import registry
from ..backends.base import RENDER_STAND_INS, BackendOptions
from ._args import (
    add_backend_options,
    add_presets_dir,
    backend_options,
    pairs,
    preset_library,
    replica_counts,
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
    p.add_argument("--run-id", default="manual", metavar="RUN_ID", help="run id label (default: manual)")
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
    options = BackendOptions(run_id=args.run_id, workdir=Path.cwd(), extra=extra)

    def warn(message: str) -> None:
        print(f"bannou-env render: {message}", file=sys.stderr)

    _write(args, registry.load(args.backend).render(topology, options, warn))
    return 0


def _write(args: argparse.Namespace, text: str) -> None:
    if args.output:
        try:  # 0600: a rendered file holds the preset's secrets in clear, to run as it is
            atomic_write(args.output, text, mode=0o600)
        except OSError as exc:
            fix = "pass -o a file path in a writable directory, or leave -o out to print"
            raise unwritable("the rendered file", args.output, exc, fix, Path(args.output).parent) from None
    else:
        sys.stdout.write(text)
