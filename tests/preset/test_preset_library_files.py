"""Every built-in preset and every upstream bannou preset loads, unchanged, and resolves."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_bannou.preset import PresetLibrary, builtin_presets_dir, load_file, resolve

# bannou's own preset files live next to the repository: <repo>/../shared/upstream-presets
UPSTREAM = Path(__file__).resolve().parents[2].parent / "shared" / "upstream-presets"

BUILTIN = sorted(p.stem for p in builtin_presets_dir().glob("*.yaml"))
UPSTREAM_FILES = sorted(UPSTREAM.glob("*/*.yaml")) if UPSTREAM.is_dir() else []


def test_builtin_library_is_complete():
    assert set(BUILTIN) >= {
        "monolith",
        "test-http",
        "test-edge",
        "test-infrastructure",
        "orchestrator",
        "split-auth",
        "split-connect",
        "regional-omega",
    }


@pytest.mark.parametrize("infra", ["", "true"])
@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_preset_resolves(name, infra):
    lib = PresetLibrary(environ={"BANNOU_INFRA": infra} if infra else {})
    t = lib.resolve(name)
    assert t.preset == name and t.bannou_nodes
    assert all(n.replicas <= 2 for n in t.nodes)
    assert bool(t.infrastructure) == bool(infra)  # infrastructure only when switched on
    for n in t.bannou_nodes:
        assert n.environment["BANNOU_APP_ID"] == n.app_id
        assert n.healthcheck is not None


def test_builtin_presets_with_their_shapes():
    lib = PresetLibrary(environ={})
    mono = lib.resolve("monolith")
    assert mono.node_names == ("bannou",) and mono.mappings == {}
    http = lib.resolve("test-http")
    assert http.testers[0].command == (
        "python",
        "-m",
        "pytest_bannou.reference.tester",
        "--format",
        "http-tester",
    )
    assert http.testers[0].format == "http-tester"
    edge = lib.resolve("test-edge")
    assert edge.testers[0].format == "edge-tester" and edge.testers[0].command[-1] == "edge-tester"
    assert "ingress" in PresetLibrary(environ={"BANNOU_INFRA": "true"}).resolve("test-edge").node_names
    assert lib.resolve("orchestrator").mappings == {"orchestrator": "bannou-orchestrator"}
    assert lib.resolve("split-auth").mappings == {"account": "bannou-auth", "auth": "bannou-auth"}
    assert lib.resolve("split-connect").mappings == {"connect": "bannou-connect"}
    assert lib.resolve("test-infrastructure").node("bannou").services == ("testing",)
    omega = lib.resolve("regional-omega")
    assert omega.node("bannou-omega-actor").environment["REGION"] == "omega"
    assert omega.node("bannou-omega-actor").replicas == 2
    theta = PresetLibrary(environ={"BANNOU_REGION": "theta"}).resolve("regional-omega")
    assert theta.node("bannou-omega-behavior").environment["REGION"] == "theta"


@pytest.mark.skipif(not UPSTREAM_FILES, reason=f"bannou's preset files not found at {UPSTREAM}")
@pytest.mark.parametrize("path", UPSTREAM_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_upstream_preset_loads_unchanged_and_resolves(path: Path):
    preset = load_file(path, environ={})
    t = resolve(preset)
    assert preset.name == path.stem and t.source == str(path)
    for node in preset.topology.nodes if preset.topology else []:
        resolved = t.node(node.name)
        for svc in node.services or []:
            assert t.mappings[svc] == resolved.app_id


@pytest.mark.skipif(not UPSTREAM_FILES, reason=f"bannou's preset files not found at {UPSTREAM}")
def test_upstream_snake_case_asset_processing_is_understood():
    p = load_file(UPSTREAM / "bannou-2026-03" / "asset-processing.yaml", environ={})
    pools = {pool.pool_type: pool for pool in p.processing_pools}
    assert list(pools) == ["asset-processor", "texture-processor", "model-processor", "audio-processor"]
    audio = pools["audio-processor"]
    assert (audio.min_instances, audio.max_instances, audio.idle_timeout_minutes) == (1, 2, 20)
    assert (audio.scale_up_threshold, audio.scale_down_threshold) == (0.75, 0.25)
    assert audio.environment["ASSET_AUDIO_OUTPUT_FORMAT"] == "opus"
    t = resolve(p)
    assert t.node("minio").image == "minio/minio:latest"
    assert p.topology.infrastructure["minio"].bucket == "bannou-assets"
    assert t.required_backends == ("compose", "swarm", "kubernetes")


@pytest.mark.skipif(not UPSTREAM_FILES, reason=f"bannou's preset files not found at {UPSTREAM}")
def test_upstream_actor_pools_without_topology():
    p = load_file(UPSTREAM / "bannou-2026-03" / "actor-pools.yaml", environ={})
    assert p.topology is None and len(p.processing_pools) == 3
    t = resolve(p)
    assert t.nodes == () and t.mappings == {}


@pytest.mark.skipif(not UPSTREAM_FILES, reason=f"bannou's preset files not found at {UPSTREAM}")
def test_upstream_layers_node():
    t = resolve(load_file(UPSTREAM / "bannou-2026-03" / "split-auth-routing-test.yaml", environ={}))
    env = t.node("bannou-auth").environment
    assert env["BANNOU_ENABLE_APP_FOUNDATION"] == "true" and "BANNOU_SERVICES_ENABLED" not in env
    assert t.mappings == {"account": "bannou-auth", "auth": "bannou-auth", "game-session": "bannou-auth"}


@pytest.mark.skipif(not UPSTREAM_FILES, reason=f"bannou's preset files not found at {UPSTREAM}")
def test_upstream_folder_as_library():
    lib = PresetLibrary([UPSTREAM / "bannou-2025-12"], environ={})
    assert {"bannou", "http-tests", "edge-tests", "monolith"} <= set(lib.names())
    t = lib.resolve("split-auth-routing-test")
    assert t.mappings["accounts"] == "bannou-auth" and t.mappings["permissions"] == "bannou-main"
