"""Direct tests: the endpoint variables a tester gets, and the tester/report options."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_bannou.errors import BannouError
from pytest_bannou.plugin import options
from pytest_bannou.plugin.testers import case_nodeid, endpoint_variables, item_nodeid
from pytest_bannou.topology.model import Node, Topology


def topology(*infra: str) -> Topology:
    ports = {"ingress": (80,), "rabbitmq": (5672, 15672), "redis": (6379,)}
    nodes = [
        Node("bannou", "bannou"),
        Node("auth-node", "auth-app", services=("auth",)),
        *[Node(k, k, kind="infrastructure", infra_type=k, ports=ports[k]) for k in infra],
    ]
    return Topology("p", tuple(nodes), mappings={"auth": "auth-app"})


def fake_address(node: str, port: int | None) -> tuple[str, int]:
    """Every node on its own host name, ports shifted: shows which node and port was asked for."""
    return f"{node}.example", (port or 0) + 10000


def test_target_node_without_ingress_or_infrastructure() -> None:
    env = endpoint_variables(topology(), "auth", fake_address)
    assert env["BANNOU_HTTP_ENDPOINT"] == "http://auth-node.example:10080"
    assert (env["OPENRESTY_HOST"], env["OPENRESTY_PORT"]) == ("auth-node.example", "10080")
    assert env["CONNECT_ENDPOINT"] == "auth-node.example:10080/connect"
    assert not {"RABBITMQ_HOST", "STATE_REDIS_CONNECTION_STRING"} & set(env)


def test_ingress_rabbitmq_and_redis_when_present() -> None:
    env = endpoint_variables(topology("ingress", "rabbitmq", "redis"), "bannou", fake_address)
    assert env["BANNOU_HTTP_ENDPOINT"] == "http://bannou.example:10080"
    assert (env["OPENRESTY_HOST"], env["OPENRESTY_PORT"]) == ("ingress.example", "10080")
    assert env["CONNECT_ENDPOINT"] == "ingress.example:10080/connect"
    assert (env["RABBITMQ_HOST"], env["RABBITMQ_PORT"]) == ("rabbitmq.example", "15672")
    assert (env["RABBITMQ_USERNAME"], env["RABBITMQ_PASSWORD"]) == ("guest", "guest")
    assert env["STATE_REDIS_CONNECTION_STRING"] == "redis.example:16379"


def test_ipv6_hosts_are_bracketed_in_urls() -> None:
    env = endpoint_variables(topology(), "bannou", lambda node, port: ("::1", 8080))
    assert env["BANNOU_HTTP_ENDPOINT"] == "http://[::1]:8080"
    assert env["OPENRESTY_HOST"] == "::1"


def test_unknown_target_is_a_clear_error() -> None:
    with pytest.raises(BannouError, match=r"tester `target: nowhere`: .*no node hosts 'nowhere'"):
        endpoint_variables(Topology("p", ()), "nowhere", fake_address)


def test_names() -> None:
    assert item_nodeid("http-tester", "test-http") == "tester::http-tester[test-http]"
    assert case_nodeid("edge-tester", "Health Check", "e") == "tester::edge-tester::Health Check[e]"


def resolve(cli: dict, env: dict, ini: dict) -> options.Settings:
    return options.resolve(lambda d: cli.get(d), lambda k: ini.get(k, ""), env)


def test_tester_and_report_options_have_env_and_ini_twins() -> None:
    s = resolve({}, {}, {})
    assert (s.testers, s.testers_only, s.report) == ("auto", False, None)
    s = resolve({}, {"BANNOU_TESTERS": "never", "BANNOU_TESTERS_ONLY": "1", "BANNOU_REPORT": "out"}, {})
    assert (s.testers, s.testers_only, s.report) == ("never", True, Path("out"))
    s = resolve({}, {}, {"bannou_testers": "always", "bannou_testers_only": True, "bannou_report": "r"})
    assert (s.testers, s.testers_only, s.report) == ("always", True, Path("r"))
    s = resolve({"bannou_testers": "auto"}, {"BANNOU_TESTERS": "never"}, {})
    assert s.testers == "auto"
    with pytest.raises(options.OptionError, match=r"BANNOU_TESTERS.*sometimes.*auto, always, never"):
        resolve({}, {"BANNOU_TESTERS": "sometimes"}, {})
