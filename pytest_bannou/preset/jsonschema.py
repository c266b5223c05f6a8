"""A JSON Schema of the preset format for editors (camelCase, bannou's spelling)."""

from __future__ import annotations

from typing import Any

from .schema import PresetSpec


def json_schema() -> dict[str, Any]:
    """Draft 2020-12 schema of a preset file. snake_case and Dapr-era spellings are also
    accepted by the loader, but the schema lists bannou's camelCase keys only."""
    schema = PresetSpec.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "pytest-bannou preset"
    schema.setdefault("required", [])
    schema["required"] = [r for r in schema["required"] if r != "name"]  # defaults to the file name
    return schema
