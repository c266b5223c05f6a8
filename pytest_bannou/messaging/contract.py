"""bannou's messaging contract over RabbitMQ: event shapes, topics, the stored heartbeat record,
the settings nodes read, and broker URLs. Pure: no pika, no Redis, no I/O but the mesh file.

Shapes follow bannou's schemas (../shared/upstream-schemas): ``FullServiceMappingsEvent`` and
``ServiceHeartbeatEvent`` (common-events.yaml), ``DeploymentEvent`` (orchestrator-events.yaml).
Everything goes to the durable topic exchange ``bannou``; the routing key is the topic bannou's
schemas name (``x-event-publications``):

- ``bannou.full-service-mappings``: FullServiceMappingsEvent, after every deploy/transition/change;
- ``bannou.deployment-events``: DeploymentEvent (started, completed, failed, topology-changed);
- ``bannou.service-lifecycle``: ServiceRestartEvent, when the plugin restarts a node (a restart, or
  a change that recreates it with new environment values);
- ``bannou.configuration-events``: ConfigurationChangedEvent, with the new configuration version
  and the changed keys (names, never values) after every configuration change;
- ``bannou.service-heartbeat``: ServiceHeartbeatEvent, published by nodes, consumed by
  ``pytest_bannou.messaging.heartbeats`` and stored in Redis as ``orch:hb:{appId}`` (90 s TTL).

The connection, publishing and consuming are in ``messaging.broker``.

Parsing functions raise ``ValueError`` with the reason, so consumers can log and drop a malformed
message without dying.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from .._support.files import atomic_write
from ..errors import BannouError
from ..topology.model import Topology

EXCHANGE = "bannou"
EXCHANGE_TYPE = "topic"
HEARTBEAT_TOPIC = "bannou.service-heartbeat"
MAPPINGS_TOPIC = "bannou.full-service-mappings"
DEPLOYMENT_TOPIC = "bannou.deployment-events"
SERVICE_LIFECYCLE_TOPIC = "bannou.service-lifecycle"
CONFIGURATION_TOPIC = "bannou.configuration-events"

HEARTBEAT_EVENT_NAME = "service.heartbeat"
MAPPINGS_EVENT_NAME = "orchestrator.full_service_mappings"

INSTANCE_STATUSES = ("healthy", "degraded", "overloaded", "shutting_down", "unavailable")
DEPLOYMENT_ACTIONS = ("started", "completed", "failed", "topology-changed")
# bannou's BackendType enum; other backends (local) are sent as null, as the schema allows
BACKEND_TYPES = ("kubernetes", "portainer", "swarm", "compose")

DEFAULT_AMQP_PORT = 5672

# heartbeats as bannou's orchestrator stores them in Redis
KEY_PREFIX = "orch:hb:"
INDEX_SUFFIX = "_index"
DEFAULT_TTL = 90.0

# the node-side settings (reference.messaging / reference.mesh_file read them)
AMQP_URL_ENV = "BANNOU_AMQP_URL"
HEARTBEAT_INTERVAL_ENV = "BANNOU_HEARTBEAT_INTERVAL"
MESH_ENDPOINTS_ENV = "BANNOU_MESH_ENDPOINTS"
MESH_ENDPOINTS_FILE_ENV = "BANNOU_MESH_ENDPOINTS_FILE"


class MessagingError(BannouError):
    """RabbitMQ or Redis could not be used; the message names the address and what was tried."""


class BrokerUnreachable(MessagingError):
    """No AMQP connection could be opened before the deadline."""


# --------------------------------------------------------------------------------------------
# time and ids


def now_iso(ts: float | None = None) -> str:
    """ISO 8601 UTC with a ``Z``, as bannou's ``date-time`` fields carry it."""
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def parse_iso(value: str) -> float:
    """Epoch seconds of an ISO 8601 timestamp (``Z`` or offset; naive means UTC)."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _base(event_name: str | None) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if event_name is not None:
        d["eventName"] = event_name
    d["eventId"] = str(uuid.uuid4())
    d["timestamp"] = now_iso()
    return d


# --------------------------------------------------------------------------------------------
# event builders


def mappings_event(
    topology: Topology | None,
    version: int,
    source_instance_id: str | None,
    *,
    mappings: Mapping[str, str] | None = None,
    default_app_id: str | None = None,
) -> dict[str, Any]:
    """A FullServiceMappingsEvent for ``topology`` (its ``mappings`` and ``default_app_id``);
    ``mappings``/``default_app_id`` override the topology's (or stand in when it is None)."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"mappings version must be a non-negative integer, got {version!r}")
    table = dict(mappings if mappings is not None else (topology.mappings if topology else {}))
    default = default_app_id or (topology.default_app_id if topology else None) or "bannou"
    event = _base(MAPPINGS_EVENT_NAME)
    event.update(
        {
            "mappings": {str(k): str(v) for k, v in sorted(table.items())},
            "defaultAppId": default,
            "version": version,
            "sourceInstanceId": source_instance_id,
            "totalServices": len(table),
        }
    )
    return event


def deployment_event(
    action: str,
    deployment_id: str,
    *,
    preset: str | None = None,
    backend: str | None = None,
    changes: Iterable[str] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """A DeploymentEvent (topic ``bannou.deployment-events``). ``backend`` outside bannou's
    BackendType enum (e.g. ``local``) is sent as null."""
    if action not in DEPLOYMENT_ACTIONS:
        raise ValueError(f"deployment action {action!r} is not one of {', '.join(DEPLOYMENT_ACTIONS)}")
    if not deployment_id:
        raise ValueError("deployment_id must be a non-empty string")
    event = _base(None)  # DeploymentEvent has no eventName in bannou's schema
    event.update(
        {
            "action": action,
            "deploymentId": deployment_id,
            "preset": preset,
            "backend": backend if backend in BACKEND_TYPES else None,
            "changes": list(changes) if changes is not None else None,
            "error": error,
        }
    )
    return event


def service_restart_event(
    service_name: str,
    reason: str,
    *,
    forced: bool = False,
    new_environment: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A ServiceRestartEvent (topic ``bannou.service-lifecycle``). ``new_environment``: the
    environment values the restart changed (the caller masks secrets), null when none."""
    if not service_name:
        raise ValueError("service_name must be a non-empty string")
    event = _base(None)  # orchestrator events carry no eventName in bannou's schema
    event.update(
        {
            "serviceName": service_name,
            "reason": reason,
            "forced": bool(forced),
            "newEnvironment": {str(k): str(v) for k, v in new_environment.items()}
            if new_environment
            else None,
        }
    )
    return event


def configuration_changed_event(config_version: int, changed_keys: Iterable[str]) -> dict[str, Any]:
    """A ConfigurationChangedEvent (topic ``bannou.configuration-events``): the new version and
    the keys that changed, never their values."""
    if isinstance(config_version, bool) or not isinstance(config_version, int) or config_version < 1:
        raise ValueError(f"configVersion must be a positive integer, got {config_version!r}")
    event = _base(None)
    event.update({"configVersion": config_version, "changedKeys": [str(k) for k in changed_keys]})
    return event


def service_status_for(instance_status: str) -> str:
    """The per-service status matching an instance status (services have no ``shutting_down``
    or ``overloaded`` of their own)."""
    return {"shutting_down": "unavailable", "overloaded": "degraded"}.get(instance_status, instance_status)


def service_status(name: str, status: str = "healthy", *, service_id: str | None = None) -> dict[str, Any]:
    """One ServiceStatus entry of a heartbeat."""
    return {"serviceId": service_id or str(uuid.uuid4()), "serviceName": name, "status": status}


def heartbeat_event(
    app_id: str,
    status: str,
    services: Sequence[str | Mapping[str, Any]],
    *,
    service_id: str | None = None,
    capacity: Mapping[str, Any] | None = None,
    issues: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ServiceHeartbeatEvent. ``services`` are names (status follows the instance's, with
    ``shutting_down``/``overloaded`` mapped to bannou's service-level words) or ServiceStatus dicts."""
    if status not in INSTANCE_STATUSES:
        raise ValueError(f"heartbeat status {status!r} is not one of {', '.join(INSTANCE_STATUSES)}")
    per_service = service_status_for(status)
    event = _base(HEARTBEAT_EVENT_NAME)
    event.update(
        {
            "serviceId": service_id or str(uuid.uuid4()),
            "appId": app_id,
            "status": status,
            "services": [service_status(s, per_service) if isinstance(s, str) else dict(s) for s in services],
            "capacity": dict(capacity) if capacity is not None else None,
            "issues": list(issues) if issues is not None else None,
        }
    )
    if metadata is not None:
        event["metadata"] = dict(metadata)
    return event


# --------------------------------------------------------------------------------------------
# parsing (consumers)


_decode = json.JSONDecoder().decode


def _load(body: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(body, (bytes, str)):
        return dict(body)
    try:
        # decoding first skips json's encoding detection (the monitor parses thousands a second)
        data = _decode(body.decode() if isinstance(body, bytes) else body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    return data


def parse_heartbeat(body: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """Validate a ServiceHeartbeatEvent; ``ValueError`` says what is wrong."""
    data = _load(body)
    app_id = data.get("appId")
    if not isinstance(app_id, str) or not app_id:
        raise ValueError("heartbeat without a string appId")
    if app_id.startswith("_"):
        raise ValueError(f"heartbeat appId {app_id!r} starts with '_' (reserved for index keys)")
    status = data.get("status")
    if status not in INSTANCE_STATUSES:
        raise ValueError(
            f"heartbeat from {app_id!r}: status {status!r} not in {', '.join(INSTANCE_STATUSES)}"
        )
    services = data.get("services")
    if not isinstance(services, list):
        raise ValueError(f"heartbeat from {app_id!r}: services must be a list")
    for s in services:
        if not isinstance(s, dict) or not isinstance(s.get("serviceName"), str):
            raise ValueError(f"heartbeat from {app_id!r}: each service needs a serviceName")
    issues = data.get("issues")
    if issues is not None and not (isinstance(issues, list) and all(isinstance(i, str) for i in issues)):
        raise ValueError(f"heartbeat from {app_id!r}: issues must be a list of strings or null")
    capacity = data.get("capacity")
    if capacity is not None and not isinstance(capacity, dict):
        raise ValueError(f"heartbeat from {app_id!r}: capacity must be an object or null")
    return data


def parse_mappings(body: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """Validate a FullServiceMappingsEvent; ``ValueError`` says what is wrong."""
    data = _load(body)
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"mappings event without an integer version (got {version!r})")
    mappings = data.get("mappings")
    if not isinstance(mappings, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in mappings.items()
    ):
        raise ValueError("mappings event: mappings must be an object of service -> non-empty appId")
    default = data.get("defaultAppId")
    if default is not None and not isinstance(default, str):
        raise ValueError("mappings event: defaultAppId must be a string or null")
    return data


# --------------------------------------------------------------------------------------------
# connection


def broker_url(url: str | None = None, *, host: str = "127.0.0.1", port: int = DEFAULT_AMQP_PORT) -> str:
    """An ``amqp://`` URL from a URL, a ``host:port`` string, or host and port."""
    if url:
        if "://" in url:
            return url
        h, _, p = url.rpartition(":")
        if h and p.isdigit():
            return f"amqp://guest:guest@{h}:{p}/%2F"
        return f"amqp://guest:guest@{url}:{port}/%2F"
    return f"amqp://guest:guest@{host}:{port}/{quote('/', safe='')}"


def redact(url: str) -> str:
    """The URL without its password, for error messages and logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def address_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or DEFAULT_AMQP_PORT}"


# --------------------------------------------------------------------------------------------
# the stored heartbeat


@dataclass(frozen=True)
class HeartbeatRecord:
    """The last heartbeat of one app id, as stored in Redis."""

    app_id: str
    status: str
    services: tuple[str, ...]
    last_seen: float  # epoch seconds when the monitor received it
    degraded_since: float | None = None  # first of the uninterrupted degraded heartbeats
    issues: tuple[str, ...] = ()
    capacity: Mapping[str, Any] | None = None
    event: Mapping[str, Any] = field(default_factory=dict)  # the ServiceHeartbeatEvent as received

    def to_json(self) -> str:
        return json.dumps(
            {"event": self.event, "lastSeen": self.last_seen, "degradedSince": self.degraded_since},
            separators=(",", ":"),
        )

    @classmethod
    def from_event(
        cls, event: Mapping[str, Any], last_seen: float, degraded_since: float | None
    ) -> HeartbeatRecord:
        return cls(
            app_id=event["appId"],
            status=event["status"],
            services=tuple(s["serviceName"] for s in event.get("services") or ()),
            last_seen=last_seen,
            degraded_since=degraded_since if event["status"] == "degraded" else None,
            issues=tuple(event.get("issues") or ()),
            capacity=event.get("capacity"),
            event=event,
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> HeartbeatRecord:
        data = json.loads(raw)
        return cls.from_event(data["event"], data["lastSeen"], data.get("degradedSince"))


# --------------------------------------------------------------------------------------------
# how nodes find their peers (bannou's mapping event carries no URLs)


def format_mesh_endpoints(endpoints: Mapping[str, str]) -> str:
    """``BANNOU_MESH_ENDPOINTS``' format: ``appId=http://host:port,...`` (sorted)."""
    return ",".join(f"{app_id}={url}" for app_id, url in sorted(endpoints.items()))


def write_mesh_endpoints(path: str | os.PathLike[str], endpoints: Mapping[str, str]) -> None:
    """Replace the mesh endpoints file in one step, so a reader never sees half of it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, format_mesh_endpoints(endpoints) + "\n", mode=0o644)
