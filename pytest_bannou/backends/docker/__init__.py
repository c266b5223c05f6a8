"""The Docker engines: the Engine API helpers, Compose files, the Compose and Swarm backends,
locally built images."""
