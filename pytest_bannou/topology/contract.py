"""Backend names and their aliases: the vocabulary presets (``requiredBackends``) and options use.

A bottom-layer module so the preset layer can validate names without importing the backends.
"""

from __future__ import annotations

from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "pytest_bannou.backends"

BUILTIN = {
    "local": "pytest_bannou.backends.local.backend:LocalBackend",
    "compose": "pytest_bannou.backends.docker.compose:ComposeBackend",
    "swarm": "pytest_bannou.backends.docker.swarm:SwarmBackend",
    "kubernetes": "pytest_bannou.backends.kubernetes.backend:KubernetesBackend",
    "portainer": "pytest_bannou.backends.portainer.backend:PortainerBackend",
}
ALIASES = {"docker-compose": "compose", "docker-swarm": "swarm", "k8s": "kubernetes"}


def canonical(name: str) -> str:
    """``docker-compose`` -> ``compose``; unknown names are returned unchanged."""
    n = name.strip().lower()
    return ALIASES.get(n, n)


def known_names() -> list[str]:
    """Built-in backends, then third-party ones from the entry-point group."""
    names = dict.fromkeys(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        names.setdefault(ep.name, None)
    return list(names)
