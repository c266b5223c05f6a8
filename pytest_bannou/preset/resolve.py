"""Preset -> ``Topology``: every default applied, environments merged in bannou's order."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from ..errors import Location, PresetError, Problem
from ..topology import contract as registry
from ..topology.contract import (
    INFRA_ENVIRONMENT,
    INFRA_HEALTH,
    INFRA_PORTS,
    layer_env_name,
    service_env_name,
)
from ..topology.ingress import UPSTREAM_ENV, ingress_target, is_ingress
from ..topology.model import (
    DEFAULT_APP_ID,
    HTTP_PORT_IN_CONTAINER,
    HealthCheck,
    Node,
    Resources,
    TesterSpec,
    Topology,
)
from .schema import HealthcheckSpec, InfraSpec, NodeSpec, PresetSpec, ResourceLimits

BANNOU_IMAGE = "bannou:latest"
#: bannou's edge set-up pins this OpenResty (provisioning/docker-compose.ingress.yml)
INGRESS_IMAGE_VERSION = "1.21.4.2-0-alpine"


def infra_image(kind: str, spec: InfraSpec) -> str | None:
    """The image an infrastructure service runs: explicit ``image``, else from ``version``."""
    if spec.image:
        return spec.image
    v = spec.version
    return {
        "redis": f"redis:{v or '7'}",
        "rabbitmq": f"rabbitmq:{v or '3.12-management'}",
        "mysql": f"mysql:{v or '8.0'}",
        "minio": "minio/minio:latest",
        "ingress": f"openresty/openresty:{v or INGRESS_IMAGE_VERSION}",
    }.get(kind)


def enablement(node: NodeSpec, env: Mapping[str, str]) -> dict[str, str]:
    """The variables bannou reads to decide which services a node runs.

    No services and no layers: a monolith, everything stays enabled. Layers: one
    ``BANNOU_ENABLE_{LAYER}=true`` per listed layer, listed services switched on on top.
    Services only: ``BANNOU_SERVICES_ENABLED=false`` then each listed service on, unless the
    preset already manages layers itself through ``BANNOU_ENABLE_*`` variables."""
    out: dict[str, str] = {}
    services = list(dict.fromkeys(node.services or ()))
    if node.layers:
        for layer in dict.fromkeys(node.layers):
            out[layer_env_name(layer)] = "true"
    elif services and not any(k.startswith("BANNOU_ENABLE_") for k in env):
        out["BANNOU_SERVICES_ENABLED"] = "false"
    for svc in services:
        out[service_env_name(svc)] = "true"
    return out


def _health(spec: HealthcheckSpec | None, default: HealthCheck | None) -> HealthCheck | None:
    if spec is None:
        return default
    kind = spec.kind
    if kind == "none":
        return None
    target: str | int | tuple[str, ...] = {
        "http": spec.http,
        "tcp": spec.tcp,
        "command": tuple(spec.command or ()),
        "log": spec.log,
    }.get(kind) or ""
    return HealthCheck(
        kind=kind,  # type: ignore[arg-type]
        target=target,
        interval=spec.interval,
        timeout=spec.timeout,
        retries=spec.retries,
        start_period=spec.start_period,
    )


def _resources(spec: ResourceLimits | None) -> Resources | None:
    if spec is None:
        return None
    return Resources(spec.cpu_limit, spec.memory_limit, spec.cpu_request, spec.memory_request)


def _infra_nodes(preset: PresetSpec) -> list[Node]:
    infra = (preset.topology.infrastructure if preset.topology else None) or {}
    nodes = []
    for name, spec in infra.items():
        if spec is None or not spec.enabled:
            continue
        ports = tuple(spec.ports) if spec.ports else INFRA_PORTS.get(name, ())
        kind = INFRA_HEALTH.get(name.lower(), "tcp")
        default_health = HealthCheck(kind=kind, target=ports[0]) if ports else None  # type: ignore[arg-type]
        if name == "ingress" and ports:  # answers /health itself, as bannou's OpenResty does
            default_health = HealthCheck(kind="http", target="/health")
        # command None lets each backend start the service its own way (local: a binary; docker: the image)
        command = tuple(spec.command) if spec.command is not None else None
        nodes.append(
            Node(
                name=name,
                app_id=name,
                kind="infrastructure",
                infra_type=name,
                image=infra_image(name, spec),
                command=command,
                ports=ports,
                volumes=tuple(spec.volumes or ()),
                environment={**INFRA_ENVIRONMENT.get(name, {}), **(spec.environment or {})},
                healthcheck=_health(spec.healthcheck, default_health),
                resources=_resources(spec.resources),
                mesh_enabled=False,
                version=spec.version,
            )
        )
    return nodes


def resolve(
    preset: PresetSpec,
    environment: Mapping[str, str] | None = None,
    replicas: Mapping[str, int] | None = None,
) -> Topology:
    """The ``Topology`` a backend deploys. ``environment`` overrides every bannou node's
    environment last; ``replicas`` overrides replica counts by node name."""
    overrides = {str(k): str(v) for k, v in (environment or {}).items()}
    nodes_spec = (preset.topology.nodes if preset.topology else None) or []
    source = str(getattr(preset, "source", None) or "")
    _check_replicas(preset, nodes_spec, replicas or {}, source)
    infra = _infra_nodes(preset)
    # the ingress starts after the node it proxies to (``_front``), not before every node
    infra_names = tuple(n.name for n in infra if not is_ingress(n))
    preset_env = dict(preset.environment or {})
    mappings: dict[str, str] = {}
    nodes: list[Node] = []
    for spec in nodes_spec:
        app_id = spec.app_id or spec.name
        env = {**preset_env, **(spec.environment or {})}
        for key, value in enablement(spec, env).items():
            env.setdefault(key, value)
        env["BANNOU_APP_ID"] = app_id
        env.update(overrides)
        for svc in spec.services or ():
            mappings.setdefault(svc, app_id)
        count = (replicas or {}).get(spec.name, spec.replicas)
        nodes.append(
            Node(
                name=spec.name,
                app_id=app_id,
                kind="bannou",
                services=tuple(dict.fromkeys(spec.services or ())),
                layers=tuple(dict.fromkeys(spec.layers or ())),
                replicas=int(count),
                environment=env,
                image=spec.image or BANNOU_IMAGE,
                command=tuple(spec.command) if spec.command is not None else None,
                ports=tuple(spec.ports) if spec.ports else (HTTP_PORT_IN_CONTAINER,),
                volumes=tuple(spec.volumes or ()),
                healthcheck=_health(spec.healthcheck, HealthCheck(kind="http", target="/health")),
                depends_on=tuple(spec.depends_on) if spec.depends_on is not None else infra_names,
                resources=_resources(spec.resources),
                mesh_enabled=spec.mesh_enabled,
            )
        )
    testers = tuple(
        TesterSpec(
            name=t.name,
            image=t.image,
            command=tuple(t.command) if t.command is not None else None,
            environment=dict(t.environment or {}),
            format=t.format,
            timeout=t.timeout,
            daemon=t.daemon,
            target=t.target,
        )
        for t in preset.testers or ()
    )
    topology = Topology(
        preset=preset.name,
        nodes=(*infra, *nodes),
        mappings=mappings,
        default_app_id=DEFAULT_APP_ID,
        preset_hash=str(getattr(preset, "hash", "") or ""),
        testers=testers,
        required_backends=tuple(dict.fromkeys(registry.canonical(b) for b in preset.required_backends or ())),
        source=source,
    )
    return _front(topology)


def _front(topology: Topology) -> Topology:
    """The ingress depends on the bannou node it proxies to (``ingress_target``) and names it in
    ``BANNOU_INGRESS_UPSTREAM`` (``node:port``, unless the preset sets it), as bannou's
    configuration names ``bannou:80``. Its readiness includes reaching that node
    (``health.probes.IngressProbe``), so its start period also covers the node's whole budget:
    a node slow to start fails on its own healthcheck, not as the ingress in front of it."""
    target = ingress_target(topology)
    if target is None or not any(is_ingress(n) for n in topology.nodes):
        return topology
    nodes = []
    for n in topology.nodes:
        if is_ingress(n):
            env = {UPSTREAM_ENV: f"{target.name}:{target.http_port or HTTP_PORT_IN_CONTAINER}"}
            env.update(n.environment)
            deps = n.depends_on if target.name in n.depends_on else (*n.depends_on, target.name)
            n = replace(n, environment=env, depends_on=deps, healthcheck=_behind(n.healthcheck, target))
        nodes.append(n)
    return topology.with_nodes(nodes)


def _behind(own: HealthCheck | None, target: Node) -> HealthCheck | None:
    """The ingress's healthcheck with the target's start period and retries added to its start
    period (unchanged when either has no retry budget)."""
    hc = target.healthcheck
    if own is None or own.retries <= 0 or hc is None or hc.kind == "none" or hc.retries <= 0:
        return own
    return replace(own, start_period=own.start_period + hc.start_period + hc.retries * hc.interval)


def _check_replicas(
    preset: PresetSpec, nodes: list[NodeSpec], replicas: Mapping[str, int], source: str
) -> None:
    names = {n.name for n in nodes}
    problems = []
    for name, count in replicas.items():
        if name not in names:
            problems.append(
                f"replica override for unknown node {name!r}; nodes: {', '.join(sorted(names)) or '(none)'}"
            )
        elif isinstance(count, bool) or not isinstance(count, int) or count < 0:
            problems.append(f"replica override for node {name!r} must be an integer >= 0, got {count!r}")
    if problems:
        where = Location(source or f"<preset {preset.name}>")
        raise PresetError([Problem(where, f"preset {preset.name!r}: {p}") for p in problems])
