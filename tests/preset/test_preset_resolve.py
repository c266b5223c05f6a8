"""resolve(): defaults, environment order, service enablement, mappings, infrastructure."""

from __future__ import annotations

import pytest

from pytest_bannou.errors import PresetError
from pytest_bannou.preset import load_file, resolve
from pytest_bannou.preset.resolve import layer_env_name, service_env_name
from pytest_bannou.topology.model import HealthCheck


def _topology(write, text, **kw):
    return resolve(load_file(write("p", text), environ={}), **kw)


def test_environment_order_preset_node_caller(write):
    t = _topology(
        write,
        """
        environment: {A: preset, B: preset, C: preset}
        topology:
          nodes:
            - name: n
              environment: {B: node, C: node}
        """,
        environment={"C": "caller"},
    )
    env = t.node("n").environment
    assert (env["A"], env["B"], env["C"]) == ("preset", "node", "caller")
    assert env["BANNOU_APP_ID"] == "n"


def test_services_enablement_and_mappings(write):
    t = _topology(
        write,
        """
        topology:
          nodes:
            - name: main
            - name: auth-node
              appId: bannou-auth
              services: [auth, game-session, auth]
        """,
    )
    main, auth = t.node("main"), t.node("auth-node")
    assert "BANNOU_SERVICES_ENABLED" not in main.environment  # monolith: everything on
    assert auth.environment["BANNOU_SERVICES_ENABLED"] == "false"
    assert auth.environment["AUTH_SERVICE_ENABLED"] == "true"
    assert auth.environment["GAME_SESSION_SERVICE_ENABLED"] == "true"
    assert auth.environment["BANNOU_APP_ID"] == "bannou-auth"
    assert auth.services == ("auth", "game-session")
    assert t.mappings == {"auth": "bannou-auth", "game-session": "bannou-auth"}
    assert t.default_app_id == "bannou"
    assert t.node_for("auth").name == "auth-node"


def test_layers_enable_layers_without_disabling_everything(write):
    t = _topology(
        write,
        """
        topology:
          nodes:
            - name: n
              layers: [AppFoundation, GameFeatures]
              services: [game-session]
        """,
    )
    env = t.node("n").environment
    assert env["BANNOU_ENABLE_APP_FOUNDATION"] == "true"
    assert env["BANNOU_ENABLE_GAME_FEATURES"] == "true"
    assert env["GAME_SESSION_SERVICE_ENABLED"] == "true"
    assert "BANNOU_SERVICES_ENABLED" not in env
    assert t.node("n").layers == ("AppFoundation", "GameFeatures")


def test_explicit_bannou_enable_keys_are_respected(write):
    t = _topology(
        write,
        """
        environment: {BANNOU_ENABLE_APP_FEATURES: "false"}
        topology:
          nodes:
            - name: n
              services: [auth]
              environment: {AUTH_SERVICE_ENABLED: "false"}
        """,
    )
    env = t.node("n").environment
    assert "BANNOU_SERVICES_ENABLED" not in env
    assert env["AUTH_SERVICE_ENABLED"] == "false"  # the preset's own value wins over the derived one
    assert env["BANNOU_ENABLE_APP_FEATURES"] == "false"


def test_defaults_for_bannou_nodes(write):
    t = _topology(write, "topology:\n  nodes:\n    - name: n\n")
    n = t.node("n")
    assert (n.kind, n.image, n.command, n.ports, n.replicas, n.mesh_enabled) == (
        "bannou",
        "bannou:latest",
        None,
        (80,),
        1,
        True,
    )
    assert n.healthcheck == HealthCheck(kind="http", target="/health")
    assert n.depends_on == () and n.resources is None


def test_infrastructure_nodes(write):
    t = _topology(
        write,
        """
        topology:
          nodes:
            - name: n
            - name: m
              dependsOn: [redis]
          infrastructure:
            redis: {version: "7.2"}
            rabbitmq: {enabled: true}
            mysql: {enabled: false}
            minio: {enabled: true, bucket: assets}
            ingress: {ports: {http: 8080}}
            etcd: {image: "quay.io/coreos/etcd:v3.5", ports: [2379], environment: {X: 1}}
        """,
    )
    infra = {n.name: n for n in t.infrastructure}
    assert list(infra) == ["redis", "rabbitmq", "minio", "ingress", "etcd"]
    assert t.node_names[:5] == tuple(infra)  # placed before bannou nodes
    assert infra["redis"].image == "redis:7.2" and infra["redis"].version == "7.2"
    assert infra["rabbitmq"].image == "rabbitmq:3.12-management" and infra["rabbitmq"].ports == (5672, 15672)
    assert infra["minio"].image == "minio/minio:latest"
    assert infra["ingress"].image == "openresty/openresty:1.21.4.2-0-alpine"
    assert infra["ingress"].ports == (8080,)
    assert infra["etcd"].environment == {"X": "1"}
    for node in infra.values():
        assert (node.kind, node.app_id, node.infra_type, node.mesh_enabled) == (
            "infrastructure",
            node.name,
            node.name,
            False,
        )
        if node.name != "ingress":  # the ingress answers /health itself
            assert node.healthcheck == HealthCheck(kind="tcp", target=node.ports[0])
    # answers /health itself; its failures count after the fronted node's budget (start period
    # and retries), since the plugin's probe also asks for a route to that node
    n_hc = t.node("n").healthcheck
    budget = n_hc.start_period + n_hc.retries * n_hc.interval
    assert infra["ingress"].healthcheck == HealthCheck(kind="http", target="/health", start_period=budget)
    # the ingress starts after the node it fronts (the main node n), not before it
    assert t.node("n").depends_on == ("redis", "rabbitmq", "minio", "etcd")
    assert infra["ingress"].depends_on == ("n",)
    assert t.node("m").depends_on == ("redis",)


def test_overrides_for_replicas(write):
    text = "topology:\n  nodes:\n    - name: n\n      replicas: 2\n"
    assert _topology(write, text, replicas={"n": 0}).node("n").replicas == 0
    with pytest.raises(PresetError, match="replica override for unknown node 'x'; nodes: n"):
        _topology(write, text, replicas={"x": 1})
    with pytest.raises(PresetError, match="must be an integer >= 0"):
        _topology(write, text, replicas={"n": -1})


def test_testers_backends_hash_and_source(write):
    path = write(
        "p",
        """
        topology:
          nodes: [{name: n}]
        requiredBackends: [docker-compose, docker-swarm, kubernetes, compose]
        testers:
          - {name: t, command: "run --fast", environment: {A: 1}, timeout: 2m, target: n}
        """,
    )
    preset = load_file(path, environ={})
    t = resolve(preset)
    assert t.required_backends == ("compose", "swarm", "kubernetes")
    (tester,) = t.testers
    assert (
        tester.command,
        tester.environment,
        tester.timeout,
        tester.daemon,
        tester.target,
        tester.format,
    ) == (("run", "--fast"), {"A": "1"}, 120.0, True, "n", "exit-code")
    assert t.preset_hash == preset.hash and t.source == str(path) and t.preset == "p"


def test_env_name_helpers():
    assert service_env_name("game-session") == "GAME_SESSION_SERVICE_ENABLED"
    assert layer_env_name("AppFoundation") == "BANNOU_ENABLE_APP_FOUNDATION"
    assert layer_env_name("Extensions") == "BANNOU_ENABLE_EXTENSIONS"
