"""The presets of the messaging integration tests: reference nodes with real redis-server and
rabbitmq-server as infrastructure nodes (local backend)."""

from __future__ import annotations

from pathlib import Path

INFRA = """
  infrastructure:
    redis:
      enabled: true
    rabbitmq:
      enabled: true
"""

PRESETS = {
    # split auth: bannou-main hosts everything, the mappings send account/auth to bannou-auth
    "msg-split": """
name: msg-split
description: split auth with redis and rabbitmq
topology:
  nodes:
    - name: bannou-main
      appId: bannou
    - name: bannou-auth
      services: [account, auth]
      healthcheck:
        heartbeat: true
        interval: 0.1
        retries: 300
"""
    + INFRA,
    # the same infrastructure, another node layout: reached from msg-split by a transition
    "msg-mono": """
name: msg-mono
description: one node with redis and rabbitmq
topology:
  nodes:
    - name: bannou-main
      appId: bannou
"""
    + INFRA,
    # no infrastructure: messaging only through the session's broker/Redis options
    "plain": """
name: plain
description: one node, no infrastructure
topology:
  nodes:
    - name: bannou-main
      appId: bannou
""",
}


def write_presets(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in PRESETS.items():
        (directory / f"{name}.yaml").write_text(text)
    return directory
