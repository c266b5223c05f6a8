"""Typed preset models (pydantic v2): the format is a superset of bannou's ``DeploymentPreset``.

Fields use snake_case names and camelCase aliases (bannou's spelling, used in the JSON Schema).
``normalize.py`` maps every accepted spelling (camel, snake, Dapr-era) onto the field names
before validation, so the models themselves only see one spelling; ``extra='forbid'`` is the
safety net behind the friendlier unknown-key messages produced there.
"""

from __future__ import annotations

import shlex
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic.alias_generators import to_camel

from ..topology.contract import INFRA_KINDS, PRESET_LAYERS
from .durations import parse_duration

LAYERS = PRESET_LAYERS
TESTER_FORMATS = ("http-tester", "edge-tester", "junit", "exit-code")
KNOWN_INFRA = INFRA_KINDS

# accepted extra spellings per field name (besides snake_case and camelCase)
EXTRA_ALIASES = {
    "app_id": ("daprAppId", "dapr_app_id"),
    "mesh_enabled": ("daprEnabled", "dapr_enabled"),
}


def _env_value(value: Any) -> Any:
    """bannou writes strings; ints, floats and bools are accepted and written as bannou reads them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


def _split_command(value: Any) -> Any:
    """A command string is split as a shell would split it (but never run through one)."""
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split command {value!r}: {exc}") from None
    return value


def _to_str(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


def _ports(value: Any) -> Any:
    """Ingress-style ``{http: 80, https: 443}`` is accepted next to a list of ports."""
    _not_bool(value)
    if isinstance(value, dict):
        unknown = set(value) - {"http", "https"}
        if unknown:
            raise ValueError(f"port mapping keys are `http` and `https`, got {sorted(unknown)}")
        return [value[k] for k in ("http", "https") if value.get(k) is not None]
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    return value


def _not_bool(value: Any) -> Any:
    """YAML reads ``yes``/``no``, ``on``/``off`` and ``true``/``false`` as booleans, and a boolean
    passes for the number 1 or 0: a port written that way is refused, not probed as port 1."""
    if isinstance(value, bool):
        raise ValueError(
            f"a port is a number from 1 to 65535, got {str(value).lower()} (YAML reads yes/no, "
            "on/off and true/false as booleans)"
        )
    return value


def _duration(value: Any) -> float:
    return parse_duration(value)


Duration = Annotated[
    float,
    BeforeValidator(_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\s*[0-9.]+\s*(ms|s|m|h)?"},
            ]
        }
    ),
]
EnvValue = Annotated[
    str, BeforeValidator(_env_value), WithJsonSchema({"type": ["string", "integer", "number", "boolean"]})
]
Environment = dict[str, EnvValue]
Command = Annotated[
    list[str],
    BeforeValidator(_split_command),
    WithJsonSchema({"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]}),
]
Port = Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=65535)]
Ports = Annotated[
    list[Port],
    BeforeValidator(_ports),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 65535}},
                {"type": "integer", "minimum": 1, "maximum": 65535},
                {
                    "type": "object",
                    "properties": {"http": {"type": "integer"}, "https": {"type": "integer"}},
                    "additionalProperties": False,
                },
            ]
        }
    ),
]
Layer = Literal["AppFoundation", "GameFoundation", "AppFeatures", "GameFeatures", "Extensions"]
Quantity = Annotated[str, BeforeValidator(_to_str), WithJsonSchema({"type": ["string", "number"]})]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        str_strip_whitespace=False,
    )


class ResourceLimits(_Model):
    cpu_limit: Quantity | None = None
    memory_limit: Quantity | None = None
    cpu_request: Quantity | None = None
    memory_request: Quantity | None = None


class HealthcheckSpec(_Model):
    """Exactly one probe (http / tcp / command / log / heartbeat / none) plus its timing."""

    http: str | None = None
    tcp: Port | None = None
    command: Command | None = None
    log: str | None = None
    heartbeat: bool | None = None
    none: bool | None = None
    interval: Duration = 1.0
    timeout: Duration = 5.0
    retries: int = Field(30, ge=0)
    start_period: Duration = 0.0

    @model_validator(mode="after")
    def _one_probe(self) -> HealthcheckSpec:
        given = [k for k in ("http", "tcp", "command", "log") if getattr(self, k) is not None]
        given += [k for k in ("heartbeat", "none") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "a healthcheck needs exactly one of `http: /path`, `tcp: PORT`, `command: [argv]`, "
                f"`log: REGEX`, `heartbeat: true` or `none: true`; got {', '.join(given) or 'none of them'}"
            )
        return self

    @property
    def kind(self) -> str:
        for k in ("http", "tcp", "command", "log"):
            if getattr(self, k) is not None:
                return k
        return "heartbeat" if self.heartbeat else "none"


class NodeSpec(_Model):
    """A bannou node (``TopologyNode``) plus our additions (image, command, ports, ...)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=63)
    app_id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    services: list[str] | None = None
    layers: list[Layer] | None = None
    replicas: int = Field(1, ge=0)
    resources: ResourceLimits | None = None
    environment: Environment | None = None
    mesh_enabled: bool = True
    image: str | None = None
    command: Command | None = None
    ports: Ports | None = None
    volumes: list[str] | None = None
    healthcheck: HealthcheckSpec | None = None
    depends_on: list[str] | None = None


class InfraSpec(_Model):
    """One infrastructure service (``InfraServiceConfig`` / ``IngressConfig`` and ours)."""

    enabled: bool = True
    version: Quantity | None = None
    image: str | None = None
    resources: ResourceLimits | None = None
    environment: Environment | None = None
    volumes: list[str] | None = None
    ports: Ports | None = None
    bucket: str | None = None
    healthcheck: HealthcheckSpec | None = None
    command: Command | None = None
    type: Literal["openresty", "nginx", "traefik", "none"] | None = None  # IngressConfig
    ssl: bool | None = None  # IngressConfig


class TopologySpec(_Model):
    nodes: list[NodeSpec] | None = None
    infrastructure: dict[str, InfraSpec | None] | None = None


class ProcessingPoolSpec(_Model):
    """bannou's processing pools: worker containers the control plane spawns, not topology nodes."""

    pool_type: str
    plugin: str | None = None
    min_instances: int = Field(1, ge=0)
    max_instances: int = Field(1, ge=0)
    scale_up_threshold: float | None = Field(None, ge=0, le=1)
    scale_down_threshold: float | None = Field(None, ge=0, le=1)
    idle_timeout_minutes: float | None = Field(None, ge=0)
    environment: Environment | None = None

    @model_validator(mode="after")
    def _bounds(self) -> ProcessingPoolSpec:
        if self.max_instances < self.min_instances:
            raise ValueError(
                f"maxInstances ({self.max_instances}) is below minInstances ({self.min_instances})"
            )
        return self


class TesterSpecModel(_Model):
    """An external tester suite run against the deployed preset."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    image: str | None = None
    command: Command | None = None
    environment: Environment | None = None
    format: Literal["http-tester", "edge-tester", "junit", "exit-code"] = "exit-code"
    timeout: Duration = 600.0
    daemon: bool = True
    target: str | None = None

    @model_validator(mode="after")
    def _image_or_command(self) -> TesterSpecModel:
        if not self.image and not self.command:
            raise ValueError(f"tester {self.name!r} needs an `image` or a `command`")
        return self


class EnvironmentChange(_Model):
    """The environment of a live ``update-env`` change, validated as a preset's environment is."""

    environment: Environment


class PresetSpec(_Model):
    """A whole preset file (bannou's ``DeploymentPreset`` keys plus extends and testers)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    category: str | None = None
    extends: str | None = None
    topology: TopologySpec | None = None
    environment: Environment | None = None
    required_backends: list[str] | None = None
    processing_pools: list[ProcessingPoolSpec] | None = None
    testers: list[TesterSpecModel] | None = None
