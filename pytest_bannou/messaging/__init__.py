"""bannou's messaging: ``contract`` (event shapes, topics, the stored heartbeat; pure), ``broker``
(pika: connection, publishing, consuming), ``heartbeats`` (the monitor and the Redis store),
``restart_policy`` (bannou's rule) and ``session`` (the messaging side of one environment).

Names are re-exported lazily (PEP 562) so that importing one submodule never imports
the others: the package stays free of import circles."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AMQP_URL_ENV": "contract",
    "BACKEND_TYPES": "contract",
    "BrokerUnreachable": "contract",
    "ConsumerThread": "broker",
    "DEFAULT_AMQP_PORT": "contract",
    "DEFAULT_CONNECT_DEADLINE": "broker",
    "DEFAULT_DEGRADED_THRESHOLD": "restart_policy",
    "DEFAULT_HEARTBEAT_INTERVAL": "session",
    "DEFAULT_REDIS_DEADLINE": "heartbeats",
    "DEFAULT_TTL": "contract",
    "DEPLOYMENT_ACTIONS": "contract",
    "DEPLOYMENT_TOPIC": "contract",
    "EXCHANGE": "contract",
    "EXCHANGE_TYPE": "contract",
    "EnvMessaging": "session",
    "EnvironmentView": "session",
    "EventPublisher": "broker",
    "HEARTBEAT_EVENT_NAME": "contract",
    "HEARTBEAT_INTERVAL_ENV": "contract",
    "HEARTBEAT_TOPIC": "contract",
    "HeartbeatMonitor": "heartbeats",
    "HeartbeatProbe": "heartbeats",
    "HeartbeatRecord": "contract",
    "HeartbeatStore": "heartbeats",
    "INDEX_SUFFIX": "contract",
    "INSTANCE_STATUSES": "contract",
    "KEY_PREFIX": "contract",
    "LIVE_STATE": "session",
    "MAPPINGS_EVENT_NAME": "contract",
    "MAPPINGS_TOPIC": "contract",
    "MAPPING_ACK_TIMEOUT": "session",
    "MESH_ENDPOINTS_ENV": "contract",
    "MESH_ENDPOINTS_FILE_ENV": "contract",
    "MESH_FILE_NAME": "session",
    "MessagingError": "contract",
    "MessagingNotConfigured": "session",
    "MessagingSettings": "session",
    "RABBITMQ_ERL_ARGS_ENV": "session",
    "REPUBLISH_AFTER": "session",
    "RedisHeartbeats": "heartbeats",
    "RedisUnreachable": "heartbeats",
    "RestartDecision": "restart_policy",
    "address_of": "contract",
    "amqp_url": "session",
    "broker_url": "contract",
    "connect_broker": "broker",
    "connect_redis": "heartbeats",
    "declare_exchange": "broker",
    "deployment_event": "contract",
    "format_mesh_endpoints": "contract",
    "heartbeat_event": "contract",
    "heartbeat_healthy": "heartbeats",
    "mappings_event": "contract",
    "now_iso": "contract",
    "parse_heartbeat": "contract",
    "parse_iso": "contract",
    "parse_mappings": "contract",
    "read_state": "session",
    "redact": "contract",
    "require": "broker",
    "restart_decision": "restart_policy",
    "service_status": "contract",
    "service_status_for": "contract",
    "settings_from": "session",
    "write_mesh_endpoints": "contract",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
