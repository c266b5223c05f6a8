"""``bannou-env render`` for real images (issue 15, point 2): every file it writes for the
built-in presets (BANNOU_INFRA true and false, with and without stand-ins, compose and swarm)
is valid against the Compose Specification's JSON Schema and `compose config`; only the images
this host builds itself (stand-ins) are written never to be pulled and with host mounts."""

from __future__ import annotations

import shutil

import pytest
import yaml

from pytest_bannou.backends.docker import images
from pytest_bannou.cli import main
from pytest_bannou.preset.library import builtin_presets_dir
from tests.support.render_checks import STACK_VERSION_WARNING, compose_config, compose_schema_errors

pytestmark = pytest.mark.usefixtures("local_images")
PRESETS = sorted(p.stem for p in builtin_presets_dir().glob("*.yaml"))
STAND_IN_KEYS = ("pull_policy", "volumes", "tmpfs")


def render(capsys, *argv: str) -> tuple[str, str]:
    assert main(["render", *argv]) == 0
    out = capsys.readouterr()
    return out.out, out.err


def stand_in_tags() -> set[str]:
    """What this host builds (the images module's list, filtered by the host programs), worked
    out here independently of the code under test."""
    return {s.tag for s in images.specs() if not s.requires or shutil.which(s.requires)}


@pytest.mark.parametrize("stand_ins", ["--stand-ins", "--no-stand-ins"])
@pytest.mark.parametrize("backend", ["compose", "swarm"])
@pytest.mark.parametrize("infra", ["false", "true"])
@pytest.mark.parametrize("preset", PRESETS)
def test_every_rendered_file_is_valid_compose(
    capsys, monkeypatch, tmp_path, preset, infra, backend, stand_ins
):
    monkeypatch.setenv("BANNOU_INFRA", infra)
    text, _ = render(capsys, preset, "--backend", backend, stand_ins)
    doc = yaml.safe_load(text)
    assert compose_schema_errors(doc) == []
    path = tmp_path / f"{preset}.yaml"
    path.write_text(text)
    result = compose_config(path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    if backend == "swarm":  # `docker stack deploy` (Docker 20.10) still needs `version`
        warnings = [w for w in warnings if STACK_VERSION_WARNING not in w]
    assert warnings == []


MIXED = """\
name: mixed
description: stand-ins (the bannou node, redis) beside a public image no host here builds
extends: test-edge
topology:
  infrastructure:
    postgres:
      enabled: true
      image: postgres:16
      ports: [5432]
"""


def test_only_stand_ins_are_never_pulled_and_mounted(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("BANNOU_INFRA", "true")
    (tmp_path / "mixed.yaml").write_text(MIXED)
    where = ("--presets-dir", str(tmp_path))
    text, err = render(capsys, "mixed", *where, "--backend", "compose")
    services = yaml.safe_load(text)["services"]
    own = stand_in_tags()
    assert {"bannou:latest", "mysql:8.0"} <= own
    assert {s["image"] for s in services.values()} - own == {"postgres:16"}
    for name, svc in services.items():
        if svc["image"] in own:
            assert svc["pull_policy"] == "never" and svc["volumes"] and svc["tmpfs"], name
            assert all(v.endswith(":ro") for v in svc["volumes"]), name
        else:  # a public image: as a user writes it
            assert not set(STAND_IN_KEYS) & set(svc), (name, svc)
            assert svc["image"] and "environment" in svc and svc["ports"] and svc["healthcheck"]
    assert "local stand-ins" in err and "--no-stand-ins" in err
    # --no-stand-ins: a file for a machine with a registry, every image public
    text, err = render(capsys, "mixed", *where, "--backend", "compose", "--no-stand-ins")
    for name, svc in yaml.safe_load(text)["services"].items():
        assert not set(STAND_IN_KEYS) & set(svc), (name, svc)
    assert "stand-ins" not in err
    # swarm's stack file: the same images mounted, no others
    stack = yaml.safe_load(render(capsys, "mixed", *where, "--backend", "swarm")[0])["services"]
    for name, svc in stack.items():
        assert ("volumes" in svc) == (svc["image"] in own), name


PUBLIC_ONLY = """\
name: public-only
description: images no host here builds
topology:
  nodes:
    - name: web
      image: nginx:1.27-alpine
      services: [website]
      ports: [80]
  infrastructure:
    postgres:
      enabled: true
      image: postgres:16
"""


def test_a_public_image_topology_renders_as_a_user_writes_it(capsys, tmp_path):
    (tmp_path / "public-only.yaml").write_text(PUBLIC_ONLY)
    text, err = render(capsys, "public-only", "--presets-dir", str(tmp_path), "--backend", "compose")
    doc = yaml.safe_load(text)
    assert {s["image"] for s in doc["services"].values()} == {"nginx:1.27-alpine", "postgres:16"}
    for svc in doc["services"].values():
        assert not set(STAND_IN_KEYS) & set(svc), svc
    assert "stand-ins" not in err
    assert compose_schema_errors(doc) == []
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    result = compose_config(path)
    assert (result.returncode, result.stderr.strip()) == (0, "")


def test_without_an_engine_stand_ins_are_what_this_host_would_build(capsys, monkeypatch, tmp_path):
    """No engine to ask: the images module's list, but only images whose host program exists
    (here: PATH without redis-server or rabbitmq-server, so only bannou:latest)."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("BANNOU_INFRA", "true")
    text, err = render(capsys, "test-http", "--backend", "compose")
    services = yaml.safe_load(text)["services"]
    own = {name for name, svc in services.items() if svc.get("pull_policy") == "never"}
    assert {services[n]["image"] for n in own} == {"bannou:latest"}
    assert "redis" in services and not set(STAND_IN_KEYS) & set(services["redis"])
    assert "no Docker Engine reachable" in err and "bannou:latest" in err


def test_a_backend_deploy_still_pulls_nothing(tmp_path):
    """The compose and portainer backends deploy only images they found on the engine: their
    files say `pull_policy: never` for every image; only render writes public images bare."""
    from pytest_bannou.backends.base import BackendOptions
    from pytest_bannou.backends.docker import compose_file
    from pytest_bannou.preset.library import PresetLibrary

    (tmp_path / "public-only.yaml").write_text(PUBLIC_ONLY)
    topology = PresetLibrary([tmp_path]).resolve("public-only")
    options = BackendOptions(run_id="r", workdir=tmp_path)
    deployed = compose_file.render(topology, options, "p")["services"]
    assert {svc["pull_policy"] for svc in deployed.values()} == {"never"}
    rendered = compose_file.render(topology, options, "p", pull_public=True)["services"]
    assert all("pull_policy" not in svc for svc in rendered.values())


def test_a_rendered_file_is_readable_by_its_owner_only(capsys, monkeypatch, tmp_path):
    # it holds the preset's secrets in clear (MYSQL_ROOT_PASSWORD, the JWT secret): it must run as it is
    monkeypatch.setenv("BANNOU_INFRA", "true")
    out = tmp_path / "compose.yaml"
    render(capsys, "test-edge", "--backend", "compose", "-o", str(out))
    assert (out.stat().st_mode & 0o777) == 0o600
    assert "MYSQL_ROOT_PASSWORD" in out.read_text()
