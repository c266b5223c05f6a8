"""bannou's facts, one place each (see DESIGN.md "Contracts taken from bannou"), and the
backend-name vocabulary presets (``requiredBackends``) and options use.

- service layers: which services each layer holds, ``INFRASTRUCTURE`` always on;
- service enablement: ``BANNOU_SERVICES_ENABLED``, ``{SERVICE}_SERVICE_ENABLED``,
  ``BANNOU_ENABLE_{LAYER}``, node identity ``BANNOU_APP_ID``;
- infrastructure kinds and their ports;
- backend names and aliases.

A bottom-layer module (no imports from the package) so presets, the environment, the reference
node and the backends read the same facts.
"""

from __future__ import annotations

import re
from importlib.metadata import entry_points

# --- nodes ---------------------------------------------------------------------------------------
DEFAULT_APP_ID = "bannou"  # FullServiceMappingsEvent.defaultAppId
HTTP_PORT_IN_CONTAINER = 80  # bannou's HTTP_WEB_HOST_PORT default inside containers
APP_ID_ENV = "BANNOU_APP_ID"

# --- service layers ------------------------------------------------------------------------------
# bannou's service layers. INFRASTRUCTURE (L0) is always enabled; every other layer has a
# BANNOU_ENABLE_{LAYER} flag (default true).
LAYERS: dict[str, tuple[str, ...]] = {
    "INFRASTRUCTURE": ("state", "messaging", "mesh", "telemetry"),
    "APP_FOUNDATION": ("account", "auth", "connect", "permission", "contract", "resource", "chat"),
    "GAME_FOUNDATION": ("game-session", "character", "realm", "location", "species", "relationship"),
    "APP_FEATURES": ("orchestrator", "website", "asset", "documentation", "voice"),
    "GAME_FEATURES": ("behavior", "actor", "matchmaking", "quest", "inventory"),
    "EXTENSIONS": ("testing",),
}
ALWAYS_ON_LAYER = "INFRASTRUCTURE"
# every service bannou knows: what routes to the default app id unless a mapping says otherwise
SERVICES: frozenset[str] = frozenset(s for services in LAYERS.values() for s in services)
# services a preset enables that are in no layer (older names like ``accounts``) count as extensions
UNLISTED_LAYER = "EXTENSIONS"


def _camel(layer: str) -> str:
    return "".join(word.capitalize() for word in layer.split("_"))


# the layers a preset may list (``layers: [AppFoundation]``): every one but the always-on one
PRESET_LAYERS: tuple[str, ...] = tuple(_camel(layer) for layer in LAYERS if layer != ALWAYS_ON_LAYER)

# --- service enablement --------------------------------------------------------------------------
SERVICES_ENABLED_ENV = "BANNOU_SERVICES_ENABLED"  # master switch, default true
LAYER_ENV_PREFIX = "BANNOU_ENABLE_"
SERVICE_ENV_SUFFIX = "_SERVICE_ENABLED"


def service_env_name(service: str) -> str:
    """``game-session`` -> ``GAME_SESSION_SERVICE_ENABLED`` (bannou's per-service switch)."""
    return re.sub(r"[^A-Za-z0-9]", "_", service).upper() + SERVICE_ENV_SUFFIX


def layer_env_name(layer: str) -> str:
    """``AppFoundation`` (or ``APP_FOUNDATION``) -> ``BANNOU_ENABLE_APP_FOUNDATION``."""
    return LAYER_ENV_PREFIX + re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", layer).upper()


# --- infrastructure ------------------------------------------------------------------------------
INFRA_PORTS: dict[str, tuple[int, ...]] = {
    "redis": (6379,),
    "rabbitmq": (5672, 15672),
    "mysql": (3306,),
    "minio": (9000,),
    "ingress": (80,),
}
INFRA_KINDS: tuple[str, ...] = tuple(INFRA_PORTS)
# readiness of an infrastructure kind when the preset names none (others: its first port accepts)
INFRA_HEALTH: dict[str, str] = {"mysql": "mysql", "mariadb": "mysql"}  # a real login
# the URL scheme of an infrastructure kind that answers no HTTP (others are written host:port)
INFRA_SCHEMES: dict[str, str] = {"redis": "redis", "rabbitmq": "amqp", "mysql": "mysql", "mariadb": "mysql"}
# what bannou's compose file (provisioning/docker-compose.services.yml, service bannou-mysql) gives
# the mysql image; a preset's infrastructure environment sets its own values over these
INFRA_ENVIRONMENT: dict[str, dict[str, str]] = {
    "mysql": {
        "MYSQL_ROOT_PASSWORD": "rootpassword",
        "MYSQL_DATABASE": "bannou",
        "MYSQL_USER": "guest",
        "MYSQL_PASSWORD": "guest",
    },
}

# --- backend names -------------------------------------------------------------------------------

ENTRY_POINT_GROUP = "pytest_bannou.backends"

BUILTIN = {
    "local": "pytest_bannou.backends.local.backend:LocalBackend",
    "compose": "pytest_bannou.backends.docker.compose:ComposeBackend",
    "swarm": "pytest_bannou.backends.docker.swarm:SwarmBackend",
    "kubernetes": "pytest_bannou.backends.kubernetes.backend:KubernetesBackend",
    "portainer": "pytest_bannou.backends.portainer.backend:PortainerBackend",
}
ALIASES = {"docker-compose": "compose", "docker-swarm": "swarm", "k8s": "kubernetes"}


def canonical(name: str) -> str:
    """``docker-compose`` -> ``compose``; unknown names are returned unchanged."""
    n = name.strip().lower()
    return ALIASES.get(n, n)


def known_names() -> list[str]:
    """Built-in backends, then third-party ones from the entry-point group."""
    names = dict.fromkeys(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        names.setdefault(ep.name, None)
    return list(names)
