"""Loading preset files: the format, aliases, coercions and every error path with its location."""

from __future__ import annotations

import pytest

from pytest_bannou.errors import PresetError
from pytest_bannou.preset import load_file, resolve

VALID = """
name: demo
description: a demo preset
category: testing
topology:
  nodes:
    - name: bannou
      services: [auth, account]
      replicas: 2
      image: bannou:dev
      command: "python -m app --flag 'two words'"
      ports: [8080, 9090]
      volumes: ["/data:/data"]
      dependsOn: [redis]
      healthcheck:
        tcp: 8080
        interval: 500ms
        timeout: 2s
        retries: 5
        startPeriod: 1m
      resources: {cpuLimit: 2, memoryLimit: 512m}
      environment:
        INT: 3
        FLAG: true
        OFF: false
        FLOAT: 1.5
  infrastructure:
    redis: {enabled: true, version: "7"}
environment:
  LEVEL: Debug
requiredBackends: [docker-compose, local]
testers:
  - name: smoke
    command: [python, -m, smoke]
    format: junit
    timeout: 90s
    daemon: false
    target: bannou
"""


def test_valid_file_loads_with_every_field(write):
    p = load_file(write("demo", VALID), environ={})
    assert (p.name, p.description, p.category) == ("demo", "a demo preset", "testing")
    node = p.topology.nodes[0]
    assert node.command == ["python", "-m", "app", "--flag", "two words"]
    assert node.environment == {"INT": "3", "FLAG": "true", "OFF": "false", "FLOAT": "1.5"}
    assert node.healthcheck.kind == "tcp"
    assert (node.healthcheck.interval, node.healthcheck.timeout, node.healthcheck.start_period) == (
        0.5,
        2,
        60,
    )
    assert node.resources.cpu_limit == "2"
    assert p.testers[0].timeout == 90 and p.testers[0].daemon is False
    assert p.source.name == "demo.yaml" and len(p.hash) == 16
    assert p.raw["topology"]["nodes"][0]["depends_on"] == ["redis"]


def test_snake_case_and_dapr_aliases_mean_the_same(write):
    camel = write(
        "camel",
        """
        name: x
        topology:
          nodes:
            - {name: n, appId: svc, meshEnabled: false, dependsOn: []}
        requiredBackends: [local]
        processingPools:
          - {poolType: p, minInstances: 1, maxInstances: 2, idleTimeoutMinutes: 3}
        """,
    )
    snake = write(
        "snake",
        """
        name: x
        topology:
          nodes:
            - {name: n, app_id: svc, mesh_enabled: false, depends_on: []}
        required_backends: [local]
        processing_pools:
          - {pool_type: p, min_instances: 1, max_instances: 2, idle_timeout_minutes: 3}
        """,
    )
    dapr = write(
        "dapr",
        """
        name: x
        topology:
          nodes:
            - {name: n, daprAppId: svc, daprEnabled: false, dependsOn: []}
        requiredBackends: [local]
        processingPools:
          - {poolType: p, minInstances: 1, maxInstances: 2, idleTimeoutMinutes: 3}
        """,
    )
    a, b, c = (load_file(f, environ={}) for f in (camel, snake, dapr))
    assert a.topology.nodes[0].app_id == "svc" and a.topology.nodes[0].mesh_enabled is False
    assert a.raw == b.raw == c.raw
    assert a.hash == b.hash == c.hash
    assert b.processing_pools[0].max_instances == 2


def test_dapr_underscore_alias(write):
    p = load_file(write("d", "topology: {nodes: [{name: n, dapr_app_id: other}]}"), environ={})
    assert p.name == "d"  # name defaults to the file name
    assert p.topology.nodes[0].app_id == "other"


def test_two_spellings_of_one_key(write, problems):
    path = write("x", "topology:\n  nodes:\n    - name: n\n      appId: a\n      daprAppId: b\n")
    assert problems(path) == [f"{path}:5:7: `daprAppId` and `appId` both set `appId` in node `n`; keep one"]


def test_unknown_key_names_nearest_key(write, problems):
    path = write("x", "topology:\n  nodes:\n    - name: n\n      replica: 2\n")
    assert problems(path) == [f"{path}:4:7: unknown key `replica` in node `n`; did you mean `replicas`?"]


def test_unknown_key_without_near_match_lists_known_keys(write, problems):
    path = write("x", "name: x\nzzzzz: 1\n")
    (line,) = problems(path)
    assert line.startswith(f"{path}:2:1: unknown key `zzzzz`; known keys: category, description")


def test_unknown_key_in_healthcheck_and_infra(write, problems):
    path = write(
        "x",
        """
        topology:
          nodes:
            - name: n
              healthcheck: {http: /health, intervall: 1s}
          infrastructure:
            redis: {enabeld: true}
        """,
    )
    out = problems(path)
    assert f"{path}:4:36: unknown key `intervall` in healthcheck in node `n`; did you mean `interval`?" in out
    assert f"{path}:6:13: unknown key `enabeld` in infrastructure `redis`; did you mean `enabled`?" in out


@pytest.mark.parametrize(
    ("yaml_text", "where", "fragment"),
    [
        (
            "topology:\n  nodes:\n    - name: n\n      replicas: two\n",
            "4:17",
            "`topology.nodes[n].replicas` should be a valid integer",
        ),
        (
            "topology:\n  nodes:\n    - name: n\n      replicas: -1\n",
            "4:17",
            "`topology.nodes[n].replicas` should be greater than or equal to 0, got -1",
        ),
        (
            "topology:\n  nodes:\n    - name: n\n      services: auth\n",
            "4:17",
            "`topology.nodes[n].services` should be a valid list, got 'auth'",
        ),
        (
            "topology:\n  nodes:\n    - name: n\n      ports: [0]\n",
            "4:15",
            "`topology.nodes[n].ports[0]` should be greater than or equal to 1, got 0",
        ),
        (
            "topology:\n  nodes:\n    - name: n\n      environment: {A: [1]}\n",
            "4:24",
            "`topology.nodes[n].environment.A` should be a valid string, got a list",
        ),
        ("topology:\n  nodes: []\n", "2:10", "`topology.nodes` is empty: add at least one node"),
        (
            "topology:\n  nodes:\n    - replicas: 1\n",
            "3:7",
            "missing required key `name` in `topology.nodes[0]`",
        ),
        ("topology:\n  nodes:\n    - name: a/b\n", "3:13", "`topology.nodes[a/b].name`: invalid name 'a/b'"),
        (
            "topology:\n  nodes:\n    - name: n\n      layers: [AppFoo]\n",
            "4:16",
            "unknown layer 'AppFoo'; known layers: AppFoundation, GameFoundation",
        ),
        (
            "requiredBackends: [docker-compose, nomad]\n",
            "1:36",
            "unknown backend 'nomad' in `requiredBackends`; known backends: compose",
        ),
        (
            "topology:\n  nodes:\n    - name: n\n      healthcheck: {interval: 1s}\n",
            "4:20",
            "a healthcheck needs exactly one of `http: /path`, `tcp: PORT`",
        ),
        (
            "topology:\n  nodes:\n    - name: n\n      healthcheck: {http: /h, tcp: 1}\n",
            "4:20",
            "got http, tcp",
        ),
        (
            "topology:\n  nodes:\n    - name: n\n      healthcheck: {http: /h, interval: soon}\n",
            "4:41",
            "`topology.nodes[n].healthcheck.interval`: expected a duration like 500ms, 2s, 1m",
        ),
        ('topology:\n  nodes:\n    - name: n\n      command: "a \'b"\n', "4:16", "cannot split command"),
        (
            "topology:\n  nodes:\n    - name: n\n      dependsOn: [db]\n",
            "4:19",
            "`dependsOn` names 'db', which is neither a node nor",
        ),
        (
            "topology:\n  nodes:\n    - name: n\n  infrastructure:\n    redis: {enabled: maybe}\n",
            "5:22",
            "`topology.infrastructure.redis.enabled` should be a valid boolean",
        ),
        (
            "topology:\n  nodes:\n    - name: n\n  infrastructure:\n    etcd: {enabled: true}\n",
            "5:5",
            "infrastructure 'etcd' is not one of redis, rabbitmq, mysql, minio, ingress: give it an `image`",
        ),
        (
            "topology:\n  nodes:\n    - name: redis\n  infrastructure:\n    redis: {}\n",
            "3:13",
            "node 'redis' has the same name as an infrastructure service",
        ),
        (
            "testers:\n  - name: t\n    format: xml\n    command: [x]\n",
            "3:13",
            "unknown tester format 'xml'; known formats: http-tester, edge-tester, junit, exit-code",
        ),
        ("testers:\n  - name: t\n", "2:5", "tester 't' needs an `image` or a `command`"),
        (
            "topology:\n  nodes:\n    - name: n\ntesters:\n  - {name: t, command: [x], target: m}\n",
            "5:37",
            "tester target 'm' is not a node of this preset; nodes: n",
        ),
        (
            "testers:\n  - {name: t, command: [x]}\n  - {name: t, command: [y]}\n",
            "3:12",
            "duplicate tester name 't'",
        ),
        (
            "processingPools:\n  - {poolType: p, minInstances: 3, maxInstances: 1}\n",
            "2:5",
            "maxInstances (1) is below minInstances (3)",
        ),
        ("name: 5\n", "1:7", "`name` should be a valid string, got 5"),
        ("description: [a]\n", "1:14", "`description` should be a valid string, got a list"),
    ],
)
def test_each_error_has_its_location_and_message(write, problems, yaml_text, where, fragment):
    path = write("x", yaml_text)
    out = problems(path)
    assert any(line.startswith(f"{path}:{where}: ") and fragment in line for line in out), out


def test_duplicate_node_names(write, problems):
    path = write("x", "topology:\n  nodes:\n    - name: a\n    - name: b\n    - name: a\n")
    assert problems(path) == [
        f"{path}:5:13: duplicate node name 'a' (first defined at line 3); node names must be unique"
    ]


def test_service_on_two_nodes_needs_one_explicit_app_id(write, problems):
    text = "topology:\n  nodes:\n    - {name: a, services: [auth]}\n    - {name: b, services: [auth, x]}\n"
    path = write("x", text)
    (line,) = problems(path)
    assert line.startswith(
        f"{path}:4:28: service 'auth' is listed on nodes 'a' and 'b' without an explicit appId"
    )
    ok = write(
        "ok",
        "topology:\n  nodes:\n    - {name: a, appId: auth, services: [auth]}\n"
        "    - {name: b, appId: auth, services: [auth]}\n",
    )
    t = resolve(load_file(ok, environ={}))
    assert t.mappings == {"auth": "auth"}


def test_all_problems_of_a_file_are_reported_together(write, problems):
    path = write(
        "x",
        """
        descriptin: x
        topology:
          nodes:
            - name: a
              replicas: -2
            - name: a
        requiredBackends: [nomad]
        environment:
          X: ${UNSET_VAR}
        """,
    )
    out = problems(path)
    assert [line.split(": ")[0] for line in out] == [
        f"{path}:1:1",
        f"{path}:5:17",
        f"{path}:6:13",
        f"{path}:7:20",
        f"{path}:9:6",
    ]


@pytest.mark.parametrize(
    ("text", "where", "fragment"),
    [
        ("name: [unclosed\n", "2:1", "malformed YAML: while parsing a flow sequence"),
        ("a: b\n  c: d\n", "2:4", "malformed YAML: mapping values are not allowed"),
        ("a: 1\na: 2\n", "2:1", "duplicate key `a` (first defined at line 1)"),
        (
            "x: !!python/object:os.system {}\n",
            "1:4",
            "unsupported YAML tag 'tag:yaml.org,2002:python/object:os.system'",
        ),
        ("x: !!python/name:os.system ''\n", "1:4", "invalid YAML value: could not determine a constructor"),
        ("x: &a [*a]\n", "1:4", "recursive YAML alias"),
        ("? [a]\n: b\n", "1:3", "a key must be a plain name"),
    ],
)
def test_malformed_yaml_gives_parser_location(write, problems, text, where, fragment):
    path = write("x", text)
    out = problems(path)
    assert any(line.startswith(f"{path}:{where}: ") and fragment in line for line in out), out


@pytest.mark.parametrize(("text", "kind"), [("", "empty"), ("- a\n", "a PosList"), ("just text\n", "a str")])
def test_a_preset_must_be_a_mapping(write, problems, text, kind):
    path = write("x", text)
    assert problems(path) == [
        f"{path}:1:1: a preset file must be a mapping (name, description, topology, ...); this one is {kind}"
    ]


def test_unreadable_file(tmp_path):
    with pytest.raises(PresetError, match=r"nope\.yaml: cannot read preset file"):
        load_file(tmp_path / "nope.yaml")


def test_merge_keys_and_anchors_are_understood(write):
    path = write(
        "x",
        """
        topology:
          nodes:
            - &base {name: a, replicas: 2, environment: {K: v}}
            - <<: *base
              name: b
        """,
    )
    nodes = load_file(path, environ={}).topology.nodes
    assert [(n.name, n.replicas, n.environment) for n in nodes] == [
        ("a", 2, {"K": "v"}),
        ("b", 2, {"K": "v"}),
    ]


@pytest.mark.parametrize(
    ("probe", "kind", "target"),
    [
        ("{http: /ready}", "http", "/ready"),
        ("{tcp: 80}", "tcp", 80),  # a port the node lists (80 by default)
        ("{command: [redis-cli, ping]}", "command", ("redis-cli", "ping")),
        ("{command: 'redis-cli ping'}", "command", ("redis-cli", "ping")),
        ("{log: 'started .*'}", "log", "started .*"),
        ("{heartbeat: true}", "heartbeat", ""),
    ],
)
def test_healthcheck_kinds(write, probe, kind, target):
    path = write("x", f"topology:\n  nodes:\n    - name: n\n      healthcheck: {probe}\n")
    hc = resolve(load_file(path, environ={})).node("n").healthcheck
    assert (hc.kind, hc.target) == (kind, target)


def test_healthcheck_none_disables_it(write):
    path = write("x", "topology:\n  nodes:\n    - name: n\n      healthcheck: {none: true}\n")
    assert resolve(load_file(path, environ={})).node("n").healthcheck is None
