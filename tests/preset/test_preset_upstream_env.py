"""The built-in test presets against bannou's own ``.env.test.*`` files (issue 15 point 1).

Every key upstream sets is either carried by the preset (in the bannou node's resolved
environment or the tester's), with upstream's value modulo host names, or listed here as left
out, with the reason. Secrets among them are masked in what ``bannou-env presets show`` prints.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pytest_bannou._support.masking import MASK, is_secret_key, topology_secrets
from pytest_bannou.cli import main
from pytest_bannou.preset import PresetLibrary
from pytest_bannou.topology.model import Topology

# bannou's test set-ups live next to the repository: <repo>/../shared/upstream-setups
UPSTREAM = Path(__file__).resolve().parents[2].parent / "shared" / "upstream-setups"

# upstream's Compose service names -> this library's node names (Compose service names are node
# names; infrastructure nodes are named after their kind)
HOSTS = {"bannou-mysql": "mysql", "openresty": "ingress"}

ENDPOINT = (
    "an endpoint: the plugin sets it for the tester from the deployed environment (testers/endpoints.py)"
)
ENABLEMENT = (
    "the preset lists its node's services, so enablement sets BANNOU_SERVICES_ENABLED=false plus one "
    "{SERVICE}_SERVICE_ENABLED=true per service (preset/resolve.py)"
)
COMPOSE_PORT = "a host port of upstream's Compose file; backends publish their own ports"
COMPOSE_NETWORK = "upstream's Compose project network; each run has its own network name"
MINIO = "asset service: not in the preset, which has no minio node"


def not_in_preset(service: str) -> str:
    return f"the {service} service is not in the preset's node"


NOT_CARRIED: dict[str, dict[str, str]] = {
    "test-edge": {
        "BANNOU_SERVICES_ENABLED": ENABLEMENT,
        "VOICE_SERVICE_ENABLED": "voice is not in the node's service list, so it is off already",
        "BANNOU_HTTP_ENDPOINT": ENDPOINT,
        "OPENRESTY_HOST": ENDPOINT,
        "OPENRESTY_PORT": ENDPOINT,
        "CONNECT_ENDPOINT": ENDPOINT,
        "REGISTER_ENDPOINT": ENDPOINT + "; bannou's edge-tester reads it, the reference one does not",
        "LOGIN_CREDENTIALS_ENDPOINT": ENDPOINT
        + "; bannou's edge-tester reads it, the reference one does not",
        "LOGIN_TOKEN_ENDPOINT": ENDPOINT + "; bannou's edge-tester reads it, the reference one does not",
        "OPENRESTY_HTTP_PORT": COMPOSE_PORT,
        "OPENRESTY_HTTPS_PORT": COMPOSE_PORT,
        "ORCHESTRATOR_DOCKER_NETWORK": COMPOSE_NETWORK,
        "ORCHESTRATOR_SECURE_WEBSOCKET": not_in_preset("orchestrator"),
        "MATCHMAKING_SERVER_SALT": not_in_preset("matchmaking"),
        "ASSET_STORAGE_ENDPOINT": MINIO,
        "ASSET_STORAGE_PUBLIC_ENDPOINT": MINIO,
        "ASSET_STORAGE_ACCESS_KEY": MINIO,
        "ASSET_STORAGE_SECRET_KEY": MINIO,
        "ANALYTICS_EVENT_BUFFER_SIZE": not_in_preset("analytics"),
        "ANALYTICS_EVENT_BUFFER_FLUSH_INTERVAL_SECONDS": not_in_preset("analytics"),
        "ACHIEVEMENT_AUTO_SYNC_ON_UNLOCK": not_in_preset("achievement"),
        "ACHIEVEMENT_SYNC_RETRY_DELAY_SECONDS": not_in_preset("achievement"),
    },
    "test-http": {
        "BANNOU_SERVICES_ENABLED": ENABLEMENT,
        "BANNOU_HTTP_ENDPOINT": ENDPOINT,
        "ORCHESTRATOR_DOCKER_NETWORK": COMPOSE_NETWORK,
        "MATCHMAKING_SERVER_SALT": not_in_preset("matchmaking"),
        "ASSET_STORAGE_ENDPOINT": MINIO,
        "ASSET_STORAGE_ACCESS_KEY": MINIO,
        "ASSET_STORAGE_SECRET_KEY": MINIO,
        "ASSET_AUDIO_BITRATE_KBPS": MINIO,
        "ASSET_AUDIO_PRESERVE_LOSSLESS": MINIO,
        "DOCUMENTATION_GIT_STORAGE_PATH": not_in_preset("documentation"),
        "ANALYTICS_EVENT_BUFFER_SIZE": not_in_preset("analytics"),
        "ANALYTICS_EVENT_BUFFER_FLUSH_INTERVAL_SECONDS": not_in_preset("analytics"),
        "ACHIEVEMENT_AUTO_SYNC_ON_UNLOCK": not_in_preset("achievement"),
        "ACHIEVEMENT_SYNC_RETRY_DELAY_SECONDS": not_in_preset("achievement"),
    },
    "test-infrastructure": {},
}
ENV_FILES = {
    "test-edge": ".env.test.edge",
    "test-http": ".env.test.http",
    "test-infrastructure": ".env.test.infrastructure",
}

needs_upstream = pytest.mark.skipif(
    not UPSTREAM.is_dir(), reason=f"bannou's test set-ups are not at {UPSTREAM} (../shared/upstream-setups)"
)


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines as Compose reads an ``env_file`` (comments and blank lines skipped)."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def local_hosts(value: str) -> str:
    for upstream, node in HOSTS.items():
        value = value.replace(f"Server={upstream};", f"Server={node};").replace(
            f"//{upstream}:", f"//{node}:"
        )
    return value


def carried(topology: Topology) -> dict[str, str]:
    """What the preset gives bannou (its one node's environment) and its tester."""
    (node,) = topology.bannou_nodes
    (tester,) = topology.testers
    both = set(node.environment) & set(tester.environment)
    assert all(node.environment[k] == tester.environment[k] for k in both), both
    return {**node.environment, **tester.environment}


@needs_upstream
@pytest.mark.parametrize("preset", sorted(ENV_FILES))
def test_the_preset_carries_upstream_env_or_says_why_not(preset):
    upstream = read_env_file(UPSTREAM / ENV_FILES[preset])
    left_out = NOT_CARRIED[preset]
    assert not set(left_out) - set(upstream), "listed as left out but not upstream any more"
    env = carried(PresetLibrary(environ={}).resolve(preset))
    for key, value in upstream.items():
        if key in left_out:
            continue
        assert key in env, f"{preset}: upstream sets {key}={value}; carry it or list it in NOT_CARRIED"
        assert env[key] == local_hosts(value), f"{preset}: {key}"
    for key in left_out:
        if key != "BANNOU_SERVICES_ENABLED":
            assert key not in env, f"{preset}: {key} is carried after all; drop it from NOT_CARRIED"


@needs_upstream
def test_host_names_point_at_the_preset_nodes():
    topology = PresetLibrary(environ={"BANNOU_INFRA": "true"}).resolve("test-edge")
    env = carried(topology)
    assert {"mysql", "ingress"} <= set(topology.node_names)
    assert env["STATE_MYSQL_CONNECTION_STRING"].startswith("Server=mysql;")
    assert env["CONNECT_URL"] == env["AUTH_CONNECT_URL"] == "ws://ingress:80/connect"
    http = carried(PresetLibrary(environ={}).resolve("test-http"))
    assert http["AUTH_CONNECT_URL"] == "ws://bannou:80/connect"  # the node itself, as upstream


def test_accounts_and_secret_can_be_overridden():
    environ = {"BANNOU_TEST_ADMIN_PASSWORD": "mine-123", "BANNOU_TEST_JWT_SECRET": "jwt-of-mine"}
    env = carried(PresetLibrary(environ=environ).resolve("test-edge"))
    assert env["ADMIN_PASSWORD"] == "mine-123"
    assert env["AUTH_JWT_SECRET"] == env["BANNOU_JWT_SECRET"] == "jwt-of-mine"
    assert env["ADMIN_USERNAME"] == "admin@admin.test.local"


@pytest.mark.parametrize("preset", sorted(ENV_FILES))
def test_preset_secrets_are_masked_in_what_the_cli_prints(preset, capsys, monkeypatch):
    for key in [k for k in os.environ if k.startswith("BANNOU_")]:
        monkeypatch.delenv(key)
    env = carried(PresetLibrary(environ={}).resolve(preset))
    secrets = {k: v for k, v in env.items() if is_secret_key(k)}
    assert {"BANNOU_JWT_SECRET"} <= set(secrets)
    if preset != "test-infrastructure":
        assert {"AUTH_JWT_SECRET", "CONNECT_SERVER_SALT", "AUTH_STEAM_API_KEY"} <= set(secrets)
    if preset == "test-edge":
        assert {"ADMIN_PASSWORD", "CLIENT_PASSWORD"} <= set(secrets)
    assert topology_secrets([PresetLibrary(environ={}).resolve(preset)]) >= set(secrets.values())
    for args in (["presets", "show", preset], ["presets", "show", preset, "--json"]):
        assert main(args) == 0
        out = capsys.readouterr().out
        for key, value in secrets.items():
            assert value not in out, f"{key}'s value is printed by bannou-env {' '.join(args)}"
    data = json.loads(out)
    connection = data["nodes"][0]["environment"].get("STATE_MYSQL_CONNECTION_STRING")
    if connection is not None:
        assert f"Password={MASK};" in connection and "Server=mysql;" in connection
