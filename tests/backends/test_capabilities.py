"""Issue 13: a third-party backend (registered like an entry point) gets apply/scale/restart
from the base class and takes part in the sweep, render, messaging and sharing through its
optional capabilities; nothing outside backends/ names an engine."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest

from pytest_bannou.backends import registry
from pytest_bannou.backends.base import BackendOptions
from pytest_bannou.errors import DeployError
from pytest_bannou.topology.diff import diff
from pytest_bannou.topology.model import Node, Topology
from tests.support import fake_backend

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_bannou"


@pytest.fixture(autouse=True)
def fake_registered(monkeypatch):
    monkeypatch.setitem(registry.BUILTIN, "fake", "tests.support.fake_backend:FakeBackend")
    fake_backend.CALLS.clear()
    fake_backend.DEAD.clear()


def topo(*nodes: Node) -> Topology:
    return Topology(preset="caps", nodes=tuple(nodes))


def test_templates_drive_the_primitives_and_check_once(tmp_path):
    b = fake_backend.FakeBackend(BackendOptions(run_id="r", workdir=tmp_path))
    with pytest.raises(DeployError, match="nothing is deployed"):
        b.scale("a", 2)
    old = topo(Node("a", "a"), Node("b", "b"), Node("c", "c"))
    b.deploy(old, time.monotonic() + 5)
    new = topo(Node("a", "a", replicas=2), Node("b", "b", environment={"X": "1"}), Node("d", "d"))
    b.apply(diff(old, new), time.monotonic() + 5)
    assert fake_backend.CALLS == [("remove", ("c", "b")), ("create", ("d", "b")), ("replicas", (("a", 2),))]
    assert b.topology == new
    with pytest.raises(DeployError, match=">= 0"):
        b.scale("a", -1)
    with pytest.raises(DeployError, match="no node 'zz'"):
        b.restart("zz")
    fake_backend.CALLS.clear()
    b.restart("a", {"Y": "2"})
    assert fake_backend.CALLS == [("restart", "a", True, {"Y": "2"})]
    assert b.topology.node("a").environment == {"Y": "2"}


def test_sweep_asks_the_backend_for_dead_runs(tmp_path):
    from pytest_bannou.environment import sweep
    from pytest_bannou.environment.runs import new_run_id

    run_id = new_run_id()
    fake_backend.DEAD.add(run_id)
    lines = sweep.sweep(["fake"])
    assert ("clean", run_id) in fake_backend.CALLS
    assert any(f"run {run_id} (fake): removed {run_id}" in line for line in lines)


def test_render_uses_the_backend(capsys):
    from pytest_bannou.cli import main

    assert main(["render", "monolith", "--backend", "fake"]) == 0
    assert capsys.readouterr().out.startswith("fake file for monolith")


def test_messaging_peers_come_from_the_backend(tmp_path):
    from pytest_bannou.messaging.session import EnvMessaging

    t = Topology(
        preset="caps",
        nodes=(
            Node("rabbitmq", "rabbitmq", kind="infrastructure", infra_type="rabbitmq", ports=(5672,)),
            Node("bannou-main", "bannou"),
        ),
    )
    env = EnvMessaging(workdir=tmp_path).inject("fake", t).node("bannou-main").environment
    assert env["BANNOU_AMQP_URL"] == "amqp://guest:guest@rabbitmq.fake:5672/%2F"
    assert env["BANNOU_MESH_ENDPOINTS"] == "bannou=http://bannou-main.fake:80"


def test_sharing_describes_with_attach_info(tmp_path):
    from types import SimpleNamespace

    from pytest_bannou.environment.sharing import describe

    b = fake_backend.FakeBackend(BackendOptions(run_id="r", workdir=tmp_path))
    data = describe(b, SimpleNamespace(topology=topo(Node("a", "a"))))
    assert data["logs"] == {"a": ["/nowhere/a.log"]}


def test_nothing_outside_backends_imports_an_engine_module():
    engines = ("local", "docker", "kubernetes", "portainer")
    found = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "backends":
            continue
        for n in ast.walk(ast.parse(path.read_text())):
            if isinstance(n, ast.ImportFrom) and n.module:
                module = n.module.split(".") if n.level else n.module.split(".")[1:]
                names = [*module, *(a.name for a in n.names)]
                if "backends" in names and any(e in names[names.index("backends") + 1 :] for e in engines):
                    found.append(f"{rel}:{n.lineno}")
    assert found == [], found
