"""The house rules for the lower rooms (issue 13): arrows point one way, bannou's facts in one
place, one infra_node, messaging's contract free of pika."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_bannou
from pytest_bannou.plugin.testers import endpoint_variables
from pytest_bannou.topology.model import Node, Topology

PACKAGE = Path(pytest_bannou.__file__).parent
ORDER = [
    "errors", "_support", "topology", "preset", "backends", "health", "messaging",
    "environment", "scheduling", "testers", "report", "cli", "reference", "plugin",
]  # fmt: skip
CHECKED = ["_support", "topology", "preset", "health", "messaging", "scheduling"]


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports from the package (any depth: functions, TYPE_CHECKING)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            targets = [module] + [f"{module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        found += [(node.lineno, t) for t in targets if t.startswith("pytest_bannou.")]
    return found


def _room(module: str) -> str:
    return module.split(".")[1]


@pytest.mark.parametrize("room", CHECKED)
def test_rooms_import_only_rooms_above_them(room):
    rank = ORDER.index(room)
    wrong = []
    for path in sorted((PACKAGE / room).rglob("*.py")):
        for line, target in _imports(path):
            other = _room(target)
            if other in ORDER and ORDER.index(other) > rank:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_circle_inside_the_checked_rooms():
    graph: dict[str, set[str]] = {}
    for room in CHECKED:
        for path in (PACKAGE / room).rglob("*.py"):
            name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
            modules = {t for _, t in _imports(path)}
            graph[name] = {m for m in modules if (PACKAGE.parent / (m.replace(".", "/") + ".py")).exists()}
    seen: dict[str, int] = {}

    def visit(name: str, stack: list[str]) -> None:
        if seen.get(name) == 2:
            return
        if seen.get(name) == 1:
            raise AssertionError("import circle: " + " -> ".join([*stack[stack.index(name) :], name]))
        seen[name] = 1
        for dep in sorted(graph.get(name, ())):
            visit(dep, [*stack, name])
        seen[name] = 2

    for name in sorted(graph):
        visit(name, [])


def test_no_module_of_the_checked_rooms_is_over_600_lines():
    long = [
        f"{p.relative_to(PACKAGE)}: {n}"
        for room in CHECKED
        for p in (PACKAGE / room).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 600
    ]
    assert not long


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
