"""The lower rooms of the house (issue 13): bannou's facts in one place, one infra_node,
messaging's contract free of pika. The rules over every module (arrows, circles, size, private
names) are held by tests/test_house_rules.py."""

from __future__ import annotations

import subprocess
import sys

from pytest_bannou.plugin.testers import endpoint_variables
from pytest_bannou.topology.model import Node, Topology


def test_messaging_contract_needs_no_pika():
    code = (
        "import sys, pytest_bannou.messaging.contract, pytest_bannou.messaging.restart_policy;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pika', 'redis', 'httpx')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _topology(*infra: Node) -> Topology:
    return Topology("p", (*infra, Node("bannou", "bannou")))


def test_one_infra_node_for_messaging_and_testers():
    from pytest_bannou.topology.model import infra_node

    rabbit = Node("rabbitmq", "rabbitmq", kind="infrastructure", infra_type="rabbitmq", ports=(5672,))
    assert infra_node(_topology(rabbit), "RabbitMQ") is rabbit
    scaled_down = Node("rabbitmq", "rabbitmq", kind="infrastructure", infra_type="rabbitmq", replicas=0)
    assert infra_node(_topology(scaled_down), "rabbitmq") is None
    # testers got the address of a broker scaled to zero (the two infra_node functions differed)
    env = endpoint_variables(_topology(scaled_down), "bannou", lambda node, port: ("127.0.0.1", port or 80))
    assert "RABBITMQ_HOST" not in env
    env = endpoint_variables(_topology(rabbit), "bannou", lambda node, port: ("127.0.0.1", port or 80))
    assert env["RABBITMQ_PORT"] == "5672"


def test_bannou_facts_live_in_topology_contract():
    from pytest_bannou.preset import schema
    from pytest_bannou.reference import node
    from pytest_bannou.topology import contract

    assert node.LAYERS is contract.LAYERS
    assert schema.LAYERS == contract.PRESET_LAYERS == (
        "AppFoundation", "GameFoundation", "AppFeatures", "GameFeatures", "Extensions",
    )  # fmt: skip
    assert schema.KNOWN_INFRA == contract.INFRA_KINDS
    assert contract.layer_env_name("GameFeatures") == "BANNOU_ENABLE_GAME_FEATURES"
    assert contract.service_env_name("game-session") == "GAME_SESSION_SERVICE_ENABLED"
