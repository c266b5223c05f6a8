"""The preset layer: bannou-compatible YAML topologies, validated with file:line locations,
interpolated, inherited (``extends``), found on a search path and resolved to a ``Topology``."""

from __future__ import annotations

from .jsonschema import json_schema
from .library import PresetLibrary, builtin_presets_dir, dirs_from_env, load_file
from .loader import Preset
from .resolve import resolve

__all__ = [
    "Preset",
    "PresetLibrary",
    "builtin_presets_dir",
    "dirs_from_env",
    "json_schema",
    "load_file",
    "resolve",
]
