"""Local images for presets, built without a registry: ``python -m pytest_bannou.backends.docker.images``.

Nothing can be pulled here, so the images presets name (``bannou:latest``, ``redis:7``,
``rabbitmq:3.12-management``, ``mysql:8.0``) are built ``FROM scratch`` and carry only metadata: a ``CMD``, an
``ENV`` and two labels. The programs themselves come from the host through read-only bind mounts
that the Compose and Swarm backends add to every container of such an image.

Label contract (read by ``backends._docker``):

- ``io.bannou.pytest.host-mounts``: comma-separated absolute host paths; each existing one is
  bind-mounted read-only at the same path in the container (``/usr,/lib,/lib64,/bin,/etc``, the
  Python installation and the directories that make ``pytest_bannou`` importable).
- ``io.bannou.pytest.tmpfs``: comma-separated container paths that get a writable tmpfs (a scratch
  image has no writable ``/tmp``).
- ``io.bannou.pytest.python``: the interpreter a Python image was built for (its ``CMD`` runs it):
  a tester command ``python ...`` runs it too, and an image whose interpreter is gone (its
  virtualenv removed) is refused with the rebuild command instead of failing to start.
- ``io.bannou.pytest.fingerprint``: a hash of everything above; ``ensure_images`` rebuilds an
  image only when its fingerprint differs, so calling it is cheap and idempotent.

Such an image only runs on the host that built it (or one with the same paths); it is a test
fixture, not something to push. The tag names what presets ask for, not what runs: ``redis:7``
and ``rabbitmq:3.12-management`` run the host's redis-server and rabbitmq-server whatever their
versions (Debian 12: Redis 7.0, RabbitMQ 3.10; the management plugin is not enabled), ``mysql:8.0``
the host's mariadbd (MariaDB 10.11 on Debian 12) set up from the same ``MYSQL_*`` variables. An image
whose host program is missing is skipped, and a preset that needs it gets the "image not found"
error naming ``python -m pytest_bannou.backends.docker.images``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import sysconfig
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import BannouError, DeployError
from ...topology.model import Topology
from ..base import RENDER_STAND_INS, BackendOptions
from . import engine as _docker

if TYPE_CHECKING:  # pragma: no cover
    import docker

# not /sbin: the engine mounts its init at /sbin/docker-init (init: true)
SYSTEM_MOUNTS = ("/usr", "/lib", "/lib64", "/bin", "/etc")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


LAYER_FILE = ".pytest-bannou-image"  # the one file an image carries (see dockerfile())


@dataclass(frozen=True)
class ImageSpec:
    tag: str
    cmd: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    tmpfs: tuple[str, ...] = ("/tmp",)
    requires: str = ""  # host program that must exist for this image to be built


def interpreter() -> str:
    """This interpreter's path as a container sees it: absolute and without ``..`` (Python keeps
    ``proj/../venv/bin/python`` as typed, and ``proj`` is not mounted), symlinks kept (a
    virtualenv is found from its ``bin/python``, not from the binary it links to)."""
    return os.path.abspath(sys.executable)


def python_mounts() -> list[str]:
    """Host directories the running interpreter and an importable ``pytest_bannou`` need."""
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    paths += [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    package_parent = str(Path(__file__).resolve().parents[3])  # the directory holding pytest_bannou/
    paths.append(package_parent)
    paths.append(str(Path(sys.executable).resolve().parent.parent))
    out: list[str] = []
    for p in paths:
        p = os.path.abspath(p)
        if p in ("/", "/usr") or not os.path.isdir(p):
            continue
        if p.startswith("/usr/"):  # already in /usr
            continue
        if not any(p == o or p.startswith(o + "/") for o in out):
            out = [o for o in out if not o.startswith(p + "/")] + [p]
    return out


def pythonpath() -> str:
    """What the container's Python needs on ``sys.path`` to import ``pytest_bannou`` and its
    dependencies the same way this process does."""
    package_parent = str(Path(__file__).resolve().parents[3])
    site = sysconfig.get_paths()["purelib"]
    return ":".join(dict.fromkeys([package_parent, site]))


def specs() -> list[ImageSpec]:
    python = interpreter()
    node_env = {"PATH": SYSTEM_PATH, "PYTHONPATH": pythonpath(), "PYTHONUNBUFFERED": "1"}
    redis_cmd = (
        "redis-server", "--bind", "0.0.0.0", "--protected-mode", "no",
        "--save", "", "--appendonly", "no", "--dir", "/tmp",
    )  # fmt: skip
    rabbit_env = {
        "PATH": SYSTEM_PATH,
        "HOME": "/var/lib/rabbitmq",
        "RABBITMQ_MNESIA_BASE": "/var/lib/rabbitmq/mnesia",
        "RABBITMQ_LOG_BASE": "/var/log/rabbitmq",
        "RABBITMQ_LOGS": "-",
        "RABBITMQ_PID_FILE": "/tmp/rabbitmq.pid",
    }
    rabbit_tmpfs = ("/tmp", "/var/lib/rabbitmq", "/var/log/rabbitmq")
    return [
        ImageSpec("bannou:latest", (python, "-m", "pytest_bannou.reference.node"), node_env),
        ImageSpec("redis:7", redis_cmd, {"PATH": SYSTEM_PATH}, requires="redis-server"),
        ImageSpec(
            "rabbitmq:3.12-management",
            ("rabbitmq-server",),
            rabbit_env,
            rabbit_tmpfs,
            requires="rabbitmq-server",
        ),
        ingress_spec(python, node_env),
        mysql_stand_in(python, node_env),
    ]


INGRESS_TAG = "openresty/openresty:1.21.4.2-0-alpine"  # what presets name (preset.resolve)


def ingress_spec(python: str, env: dict[str, str]) -> ImageSpec:
    """The ingress stand-in: the host's nginx/openresty behind a small entrypoint that writes the
    configuration from the container's environment (``backends.ingress``)."""
    binary = "openresty" if shutil.which("openresty") else "nginx"
    return ImageSpec(INGRESS_TAG, (python, "-m", "pytest_bannou.backends.ingress"), env, requires=binary)


def mysql_stand_in(python: str, env: dict[str, str]) -> ImageSpec:
    """``mysql:8.0`` from the host's mariadbd/mysqld: ``backends.mysql_server`` does what the
    image's entrypoint does (datadir, ``MYSQL_*`` variables, ``/docker-entrypoint-initdb.d``),
    then execs the server on 0.0.0.0:3306. Its data lives in a tmpfs, as a test database may."""
    cmd = (
        python, "-m", "pytest_bannou.backends.mysql_server", "--bind", "0.0.0.0", "--port", "3306",
        "--datadir", "/var/lib/mysql", "--socket", "/run/mysqld/mysqld.sock",
        "--pid-file", "/run/mysqld/mysqld.pid",
    )  # fmt: skip
    return ImageSpec("mysql:8.0", cmd, env, ("/tmp", "/var/lib/mysql", "/run/mysqld"), requires="mysqld")


def mounts_for(spec: ImageSpec) -> list[str]:
    mounts = [m for m in SYSTEM_MOUNTS if os.path.exists(m)]
    for p in python_mounts():
        if p not in mounts:
            mounts.append(p)
    return mounts


def dockerfile(spec: ImageSpec) -> tuple[str, str]:
    """The Dockerfile text and its fingerprint."""
    mounts = mounts_for(spec)
    python = spec.cmd[0] if spec.cmd and spec.cmd[0] == interpreter() else ""
    body = {
        "cmd": list(spec.cmd),
        "env": spec.env,
        "mounts": mounts,
        "tmpfs": list(spec.tmpfs),
        "layer": LAYER_FILE,
        "python": python,
    }
    fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    lines = ["FROM scratch"]
    for k, v in spec.env.items():
        lines.append(f"ENV {k}={json.dumps(v)}")
    labels = {
        _docker.LABEL_HOST_MOUNTS: ",".join(mounts),
        _docker.LABEL_TMPFS: ",".join(spec.tmpfs),
        _docker.LABEL_IMAGE_FINGERPRINT: fingerprint,
    }
    if python:  # tester commands `python ...` run this interpreter in the image (testers)
        labels[_docker.LABEL_PYTHON] = python
    lines.append("LABEL " + " ".join(f"{k}={json.dumps(v)}" for k, v in labels.items()))
    lines.append(f"CMD {json.dumps(list(spec.cmd))}")
    # one small file layer: a dockershim kubelet refuses images of size 0 ("Id or size of image
    # is not set"), so the same tags also run on the Kubernetes backend
    lines.append(f"COPY {LAYER_FILE} /{LAYER_FILE}")
    return "\n".join(lines) + "\n", fingerprint


def stand_ins_wanted(options: BackendOptions) -> bool:
    """Whether ``bannou-env render`` may write stand-ins (``--no-stand-ins`` says no)."""
    return str((options.extra or {}).get(RENDER_STAND_INS, "true")).lower() not in ("false", "0", "no")


def stand_ins_for(
    topology: Topology, options: BackendOptions, warn: Callable[[str], None] | None = None
) -> dict[str, _docker.ImageInfo]:
    """``render_infos`` as ``Backend.render`` asks for it (``options`` may say --no-stand-ins)."""
    return render_infos(topology, warn, stand_ins_wanted(options))


def render_infos(
    topology: Topology, warn: Callable[[str], None] | None = None, stand_ins: bool = True
) -> dict[str, _docker.ImageInfo]:
    """The topology's images that are stand-ins on this host, the only ones a rendered file
    marks never to be pulled and gives host mounts: a stand-in the engine has (recognised by its
    labels), or, when the engine lacks the tag or cannot be asked, one this module would build
    here. Every other image is public: rendered as a user would write it. ``stand_ins=False``:
    none (a file for a machine with a registry)."""
    if not stand_ins:
        return {}
    known = known_infos()
    names = list(dict.fromkeys(_docker.image_for(node) for node in topology.nodes))
    try:
        cli = _docker.client(timeout=5)
    except BannouError:
        infos = {name: known[name] for name in names if name in known}
        _note(warn, infos, "no Docker Engine reachable; as this host would build them")
        return infos
    infos = {}
    try:
        for name in names:
            info = _docker.image_info(cli, name)
            if info is not None and info.local_build:
                infos[name] = info
            elif info is None and name in known:
                infos[name] = known[name]
    finally:
        cli.close()
    _note(warn, infos, "")
    return infos


def _note(warn: Callable[[str], None] | None, infos: dict[str, _docker.ImageInfo], why: str) -> None:
    """Tell the user which images were written as this host's stand-ins, and how to avoid it."""
    if warn is None or not infos:
        return
    where = f" ({why})" if why else ""
    warn(
        f"local stand-ins{where}: {', '.join(infos)} (never pulled, host mounts: the file runs on "
        "this host only); --no-stand-ins writes them as public images"
    )


def known_infos() -> dict[str, _docker.ImageInfo]:
    """The images this module builds on this host (those whose host program exists), described
    without an engine (``bannou-env render`` uses this when the engine cannot be asked)."""
    return {
        spec.tag: _docker.ImageInfo(spec.tag, "", tuple(mounts_for(spec)), spec.tmpfs, True)
        for spec in specs()
        if not spec.requires or shutil.which(spec.requires) is not None
    }


def _current_fingerprint(cli: docker.DockerClient, tag: str) -> str | None:
    import docker as docker_sdk

    try:
        img = cli.images.get(tag)
    except docker_sdk.errors.ImageNotFound:
        return None
    return ((img.attrs.get("Config") or {}).get("Labels") or {}).get(_docker.LABEL_IMAGE_FINGERPRINT)


def build(cli: docker.DockerClient, spec: ImageSpec) -> str:
    text, _ = dockerfile(spec)
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (("Dockerfile", text.encode()), (LAYER_FILE, f"{spec.tag}\n".encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    try:
        image, _logs = cli.images.build(fileobj=context, custom_context=True, tag=spec.tag, rm=True)
    except Exception as exc:
        raise DeployError(f"building image {spec.tag} failed: {exc}") from None
    return image.id


def ensure_images(cli: docker.DockerClient | None = None, *, include_optional: bool = True) -> list[str]:
    """Build (or keep, when up to date) every local image whose host program exists; return the
    tags that are available afterwards."""
    own = cli is None
    cli = cli or _docker.client()
    try:
        tags: list[str] = []
        for spec in specs():
            if spec.requires and (not include_optional or shutil.which(spec.requires) is None):
                continue
            _, fingerprint = dockerfile(spec)
            if _current_fingerprint(cli, spec.tag) != fingerprint:
                build(cli, spec)
            tags.append(spec.tag)
        return tags
    finally:
        if own:
            cli.close()


def main(argv: list[str] | None = None) -> int:
    from ...errors import BannouError

    try:
        tags = ensure_images()
    except BannouError as exc:
        print(f"pytest_bannou.backends.docker.images: {exc}", file=sys.stderr)
        return 1
    skipped = [s.tag for s in specs() if s.tag not in tags]
    print("images ready: " + ", ".join(tags))
    if skipped:
        print("skipped (host program missing): " + ", ".join(skipped))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
