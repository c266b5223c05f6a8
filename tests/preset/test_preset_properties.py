"""Property tests: topology.diff/apply laws, and a fuzzer proving the loader only ever raises
PresetError, whatever it is fed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck as HypoHealthCheck
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_bannou.errors import PresetError
from pytest_bannou.preset import builtin_presets_dir, load_file, resolve
from pytest_bannou.topology.diff import Action, apply, diff
from pytest_bannou.topology.model import HealthCheck, Node, Topology

names = st.sampled_from(["bannou", "auth", "connect", "redis", "actor", "behavior", "main"])
env = st.dictionaries(st.sampled_from(["A", "B", "LEVEL"]), st.sampled_from(["1", "2", "x"]), max_size=2)


@st.composite
def nodes(draw):
    node_names = draw(st.lists(names, unique=True, max_size=5))
    out = []
    for name in node_names:
        out.append(
            Node(
                name=name,
                app_id=draw(st.sampled_from([name, "bannou"])),
                kind=draw(st.sampled_from(["bannou", "infrastructure"])),
                services=tuple(draw(st.lists(st.sampled_from(["auth", "account", "connect"]), unique=True))),
                replicas=draw(st.integers(0, 3)),
                environment=draw(env),
                image=draw(st.sampled_from([None, "bannou:latest", "redis:7"])),
                ports=tuple(
                    draw(st.lists(st.sampled_from([80, 6379, 5672]), unique=True, min_size=1, max_size=2))
                ),
                healthcheck=draw(
                    st.sampled_from([None, HealthCheck(), HealthCheck(kind="tcp", target=6379)])
                ),
            )
        )
    return out


topologies = st.builds(lambda ns: Topology(preset="p", nodes=tuple(ns)), nodes())


# no deadline: CI machines share cores with engines under test; the laws are what is checked
RELAXED = settings(deadline=None, suppress_health_check=[HypoHealthCheck.too_slow])


@RELAXED
@given(topologies)
def test_diff_of_a_topology_with_itself_keeps_everything(a):
    t = diff(a, a)
    assert all(c.action is Action.KEEP for c in t.changes) and t.is_noop and t.cost == 0
    assert [c.name for c in t.changes] == list(a.node_names)


@RELAXED
@given(topologies, topologies)
def test_applying_the_diff_gives_the_new_nodes(a, b):
    assert apply(a, diff(a, b)) == b.nodes
    assert apply(None, diff(None, b)) == b.nodes


# ---- loader fuzzing ------------------------------------------------------------------------

SEEDS = [p.read_text() for p in sorted(builtin_presets_dir().glob("*.yaml"))]
SEEDS.append(
    """
name: seed
extends: monolith
topology:
  nodes:
    - name: n
      appId: a
      services: [auth]
      layers: [AppFoundation]
      replicas: 2
      command: "run it"
      ports: [80]
      healthcheck: {http: /health, interval: 1s}
      dependsOn: [redis]
      resources: {cpuLimit: "1"}
  infrastructure:
    redis: {enabled: true, version: "7"}
    ingress: {ports: {http: 80}}
processing_pools:
  - {pool_type: p, min_instances: 1, max_instances: 2}
testers:
  - {name: t, command: [x], format: junit, timeout: 5s, target: n}
requiredBackends: [docker-compose]
"""
)
JUNK_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.just("${UNSET}"),
    st.just("${X:?boom}"),
    st.just("$${"),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.just([]),
    st.just({}),
)


def _paths(data, prefix=()):
    yield prefix
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _paths(v, (*prefix, i))


def _mutate(data, path, how, junk, new_key):
    if not path:
        return junk if how == "swap" else data
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if how == "delete":
        del parent[last]
    elif how == "rename" and isinstance(parent, dict):
        parent[new_key] = parent.pop(last)
    else:
        parent[last] = junk
    return data


@st.composite
def mutated_presets(draw):
    text = draw(st.sampled_from(SEEDS))
    data = yaml.safe_load(text)
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(data))
        path = draw(st.sampled_from(paths))
        how = draw(st.sampled_from(["delete", "rename", "swap"]))
        if how == "delete" and not path:
            continue
        data = _mutate(data, path, how, draw(JUNK_VALUES), draw(st.text(min_size=1, max_size=10)))
    out = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    if draw(st.booleans()):  # text-level garbage on top
        pos = draw(st.integers(0, len(out)))
        out = out[:pos] + draw(st.text(alphabet=":-[]{}&*!|>'\"#%@`\t\n ${}aZ9", max_size=6)) + out[pos:]
    return out


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HypoHealthCheck.function_scoped_fixture, HypoHealthCheck.too_slow],
)
@given(text=mutated_presets())
def test_loader_only_raises_preset_error(fuzz_dir, text):
    path = fuzz_dir / "fuzzed.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        preset = load_file(path, environ={"X": ""})
        resolve(preset)
    except PresetError as exc:
        assert exc.problems and all(str(p) for p in exc.problems)
        for p in exc.problems:  # every problem points into a file (or names the search path)
            assert p.location.file
