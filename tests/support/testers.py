"""Shared by the tester-layer tests: their transcripts in tests/testers/data."""

from __future__ import annotations

import textwrap
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "testers" / "data"


def read(name: str) -> str:
    return (DATA / name).read_bytes().decode("utf-8")


def preset_yaml(name: str, testers: str, nodes: str = "") -> str:
    """A one-node preset (the reference node) with the given ``testers:`` YAML block."""
    nodes = (
        nodes
        or """
          nodes:
            - name: main
              appId: bannou
    """
    )
    return (
        textwrap.dedent(
            f"""
        name: {name}
        description: tester integration
        topology:
        """
        )
        + textwrap.indent(textwrap.dedent(nodes).strip("\n"), "  ")
        + "\n"
        + textwrap.dedent(testers)
    )
