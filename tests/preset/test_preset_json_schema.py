"""The JSON Schema (``bannou-env presets schema``) accepts what the loader accepts.

Every preset the loader takes — the built-ins, bannou's own files, and the spellings the tests
use (snake_case, Dapr-era keys, ``${VAR}`` where a number or a boolean goes) — validates against
the schema with a real JSON Schema validator; clearly wrong presets still do not.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from pytest_bannou.preset import builtin_presets_dir, json_schema, load_file

UPSTREAM = Path(__file__).resolve().parents[2].parent / "shared" / "upstream-presets"  # ../shared

# presets the loader accepts, written the ways the other preset tests write them
TEST_PRESETS = {
    "interpolated-scalars": """
        topology:
          nodes:
            - name: main
              replicas: ${REPLICAS:-2}
              meshEnabled: ${MESH:-true}
              ports: ["${PORT:-8080}"]
              layers: [AppFoundation]
              healthcheck: {http: /health, retries: "${RETRIES:-5}", interval: 2s}
          infrastructure:
            redis: {enabled: "${BANNOU_INFRA:-false}"}
            rabbitmq: ~
        processingPools:
          - {poolType: p, minInstances: "${MIN:-1}", maxInstances: 3, scaleUpThreshold: "${UP:-0.8}"}
        testers:
          - {name: t, command: "echo hi", daemon: "${DAEMON:-false}", format: exit-code}
    """,
    "snake-case": """
        required_backends: [local]
        processing_pools:
          - {pool_type: asset-processor, plugin: asset, min_instances: 1, max_instances: 5,
             idle_timeout_minutes: 10}
        topology:
          nodes:
            - {name: main, app_id: bannou-main, mesh_enabled: false, depends_on: [], services: [auth]}
    """,
    "dapr-era": """
        topology:
          nodes:
            - {name: main, daprAppId: bannou, daprEnabled: true}
            - {name: other, dapr_app_id: other, dapr_enabled: false}
    """,
    "ports-and-commands": """
        topology:
          nodes:
            - {name: a, ports: 8080, command: "python -m x", healthcheck: {tcp: 8080}}
            - {name: b, ports: {http: 80, https: 443}, command: [python, -m, x], environment: {A: 1, B: true}}
          infrastructure:
            ingress: {type: openresty, ssl: false, ports: {http: 80}}
    """,
}

# clearly wrong presets the schema must still refuse
WRONG_PRESETS = {
    "a number where the node list goes": "topology:\n  nodes: 5\n",
    "an unknown top-level key": "nodez: []\n",
    "a node without a name": "topology:\n  nodes:\n    - {replicas: 1}\n",
    "a list where replicas go": "topology:\n  nodes:\n    - {name: a, replicas: [1]}\n",
    "a word where a boolean goes": "topology:\n  nodes:\n    - {name: a, meshEnabled: maybe}\n",
    "a port out of range": "topology:\n  nodes:\n    - {name: a, ports: [70000]}\n",
    "two spellings of one key": "topology:\n  nodes:\n    - {name: a, appId: x, app_id: y}\n",
}


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _errors(validator: jsonschema.protocols.Validator, path: Path) -> list[str]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        f"{path}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)
    ]


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml"))


def test_every_builtin_preset_validates(validator):
    files = _files(builtin_presets_dir())
    assert len(files) >= 8
    for path in files:
        load_file(path, environ={})  # the loader takes it ...
        assert _errors(validator, path) == []  # ... and so does the schema


def test_every_upstream_preset_validates(validator):
    if not UPSTREAM.is_dir():
        pytest.skip(f"bannou's preset files are not here ({UPSTREAM})")
    files = _files(UPSTREAM)
    assert any(p.name == "asset-processing.yaml" for p in files)
    problems = [e for path in files for e in _errors(validator, path)]
    assert problems == []


@pytest.mark.parametrize("name", sorted(TEST_PRESETS))
def test_test_presets_the_loader_accepts_validate(name, tmp_path, validator):
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(TEST_PRESETS[name]).lstrip("\n"), encoding="utf-8")
    load_file(path, environ={})
    assert _errors(validator, path) == []


@pytest.mark.parametrize("what", sorted(WRONG_PRESETS))
def test_the_schema_still_rejects_wrong_presets(what, tmp_path, validator):
    path = tmp_path / "wrong.yaml"
    path.write_text(WRONG_PRESETS[what], encoding="utf-8")
    assert _errors(validator, path), f"the schema accepted {what}"


def test_the_printed_schema_is_the_one_validated(tmp_path):
    """What the README tells users to run gives the same schema, usable from a file."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest_bannou.cli", "presets", "schema"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert json.loads(out) == json.loads(json.dumps(json_schema()))
