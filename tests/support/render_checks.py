"""Checks of the files ``bannou-env render`` writes, against what the engines themselves accept:
the Compose Specification's JSON Schema (as vendored by check-jsonschema, nothing fetched),
``docker compose config``, the Kubernetes API models of the ``kubernetes`` client and
``kubectl apply --dry-run=client --validate=strict``."""

from __future__ import annotations

import inspect
import json
import shutil
import subprocess
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

# check-jsonschema ships the compose-spec project's schema (Apache-2.0, its licence next to it in
# check_jsonschema/builtin_schemas/vendor/licenses/LICENSE.compose-spec): `--builtin-schema
# vendor.compose-spec`
COMPOSE_SCHEMA = ("check_jsonschema.builtin_schemas.vendor", "compose-spec.json")
# the one warning `compose config` gives for a stack file: `docker stack deploy` of Docker 20.10
# still needs the `version` key that Compose v2 ignores
STACK_VERSION_WARNING = "the attribute `version` is obsolete"


@cache
def _compose_validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    pytest.importorskip(COMPOSE_SCHEMA[0], reason="the compose-spec schema comes with check-jsonschema")
    schema = json.loads((resources.files(COMPOSE_SCHEMA[0]) / COMPOSE_SCHEMA[1]).read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def compose_schema_errors(doc: Mapping[str, Any]) -> list[str]:
    """Every place where ``doc`` breaks the Compose Specification (empty: valid)."""
    errors = _compose_validator().iter_errors(dict(doc))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors]


def compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    """``docker compose -f PATH config -q`` with the Compose v2 the compose backend uses;
    skips (with the reason) when there is none."""
    from pytest_bannou.backends.docker.compose import compose_command
    from pytest_bannou.errors import BackendUnavailable

    try:
        argv = compose_command().argv
    except BackendUnavailable as exc:
        pytest.skip(f"no Compose v2 to run `compose config`: {exc.message}")
    return subprocess.run(
        [*argv, "-f", str(path), "config", "-q"], capture_output=True, text=True, timeout=120
    )


# --- Kubernetes ----------------------------------------------------------------------------------
MODELS = {("v1", "Namespace"): "V1Namespace", ("v1", "Service"): "V1Service"}
MODELS[("apps/v1", "Deployment")] = "V1Deployment"
_PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float)}


def k8s_model_errors(doc: Mapping[str, Any]) -> list[str]:
    """Fields of a manifest that its Kubernetes API model does not have or types wrongly, and
    what the model's own validation refuses (required fields, enumerations)."""
    k8s = pytest.importorskip("kubernetes")
    kind = (doc.get("apiVersion"), doc.get("kind"))
    if kind not in MODELS:
        return [f"unexpected kind {kind}"]
    errors = _walk(k8s.client.models, doc, MODELS[kind], str(kind[1]))

    class _Response:  # what ApiClient.deserialize reads (client < 35)
        data = json.dumps(doc)

    api = k8s.client.ApiClient()
    try:
        if "content_type" in inspect.signature(api.deserialize).parameters:  # pydantic models
            api.deserialize(json.dumps(doc), MODELS[kind], "application/json")
        else:
            api.deserialize(_Response(), MODELS[kind])
    except (ValueError, TypeError) as exc:
        errors.append(f"{kind[1]}: {exc}")
    return errors


def _walk(models: Any, data: Any, type_name: str, path: str) -> list[str]:
    """``openapi_types`` names: ``list[X]``/``dict(str, X)`` (client < 35), ``List[X]``/``Dict[str, X]``."""
    if type_name.lower().startswith("list["):
        if not isinstance(data, list):
            return [f"{path}: {data!r} is not a list"]
        return [e for i, v in enumerate(data) for e in _walk(models, v, type_name[5:-1], f"{path}[{i}]")]
    if type_name.lower().startswith(("dict(", "dict[")):
        if not isinstance(data, dict):
            return [f"{path}: {data!r} is not a mapping"]
        inner = type_name[5:-1].split(", ", 1)[1]
        return [e for k, v in data.items() for e in _walk(models, v, inner, f"{path}.{k}")]
    if type_name in _PRIMITIVES:
        ok = isinstance(data, _PRIMITIVES[type_name]) and not (type_name != "bool" and isinstance(data, bool))
        return [] if ok else [f"{path}: {data!r} is not {type_name}"]
    if type_name in ("object", "datetime", "date"):
        return []
    klass = getattr(models, type_name)
    if not isinstance(data, dict):
        return [f"{path}: {data!r} is not a {type_name}"]
    fields = {json_name: attr for attr, json_name in klass.attribute_map.items()}
    errors: list[str] = []
    for key, value in data.items():
        if key not in fields:
            errors.append(f"{path}.{key}: no such field in {type_name}")
        else:
            errors += _walk(models, value, klass.openapi_types[fields[key]], f"{path}.{key}")
    return errors


def kubectl_dry_run(path: Path, kubeconfig: str) -> subprocess.CompletedProcess[str]:
    """``kubectl apply --dry-run=client --validate=strict -f PATH`` (the cluster's OpenAPI
    document checks every field); skips when kubectl or the cluster is missing."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the manifests were checked against the API models only")
    env = {"KUBECONFIG": kubeconfig, "PATH": "/usr/bin:/bin", "HOME": str(path.parent)}
    probe = subprocess.run(
        [kubectl, "version", "--request-timeout=10s"], capture_output=True, text=True, env=env, timeout=60
    )
    if probe.returncode != 0:
        pytest.skip(f"no Kubernetes cluster reachable through {kubeconfig}: {probe.stderr.strip()[:200]}")
    return subprocess.run(
        [kubectl, "apply", "--dry-run=client", "--validate=strict", "-f", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
