"""The endpoint variables a tester gets: where the target node, the front (ingress), RabbitMQ and
Redis are reached from where the tester runs (the host for a process, the environment's network
for a container). Shared by ``runner``'s process testers and ``container``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import BannouError
from ..topology.model import Node, TesterSpec, Topology, infra_node
from .runner import tester_environment

__all__ = ["Address", "endpoint_variables", "infra_node", "process_endpoints"]

if TYPE_CHECKING:
    from ..environment.environment import Environment

#: ``address(node_name, port) -> (host, port)``: how a node's port is reached by the tester
Address = Callable[[str, "int | None"], tuple[str, int]]


def endpoint_variables(topology: Topology, target: str, address: Address) -> dict[str, str]:
    """The tester's endpoint variables; ``address(node_name, port) -> (host, port)`` says how a
    node's port is reached from where the tester runs (the host, or the environment's network)."""

    def url(node: Node, port: int | None = None) -> str:
        host, p = address(node.name, port or node.http_port)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{p}"

    try:
        target_node = topology.node_for(target)
    except KeyError as exc:
        raise BannouError(
            f"tester `target: {target}`: {exc.args[0]}; set it to one of the preset's nodes"
        ) from None
    env = tester_environment(url(target_node))
    front = infra_node(topology, "ingress") or target_node
    front_env = tester_environment(url(front))
    for k in ("OPENRESTY_HOST", "OPENRESTY_PORT", "CONNECT_ENDPOINT"):
        env[k] = front_env[k]
    rabbit = infra_node(topology, "rabbitmq")
    if rabbit is not None and rabbit.ports:
        host, port = address(rabbit.name, rabbit.ports[0])
        env["RABBITMQ_HOST"] = host
        env["RABBITMQ_PORT"] = str(port)
        env["RABBITMQ_USERNAME"] = rabbit.environment.get("RABBITMQ_DEFAULT_USER", "guest")
        env["RABBITMQ_PASSWORD"] = rabbit.environment.get("RABBITMQ_DEFAULT_PASS", "guest")
    redis = infra_node(topology, "redis")
    if redis is not None and redis.ports:
        host, port = address(redis.name, redis.ports[0])
        env["STATE_REDIS_CONNECTION_STRING"] = f"{host}:{port}"
    return env


def process_endpoints(env: Environment, spec: TesterSpec) -> dict[str, str]:
    """Endpoint variables for a tester running on this host (published ports)."""

    def address(node: str, port: int | None) -> tuple[str, int]:
        ep = env.endpoint(node, port)
        return ep.host, ep.port

    return endpoint_variables(env.topology, spec.target or env.main_node, address)
