"""A JSON Schema of the preset format for editors, accepting what the loader accepts.

The models' own schema describes values after loading; a file is read before that: every string
value may hold ``${VAR}`` interpolation (``replicas: ${N:-2}``, ``enabled: ${BANNOU_INFRA:-false}``),
and every key may be written in any spelling ``normalize`` maps (camelCase, snake_case,
Dapr-era ``daprAppId``). The schema here adds both, so an editor never flags a file the plugin
loads; what the loader refuses for its type (a number where the node list goes) stays refused.
"""

from __future__ import annotations

import copy
import itertools
import typing
from typing import Any

from pydantic import BaseModel

from .normalize import display, spellings
from .schema import EXTRA_ALIASES, PresetSpec

INTERPOLATED = "Interpolated"
_INTERPOLATED_SCHEMA = {
    "type": "string",
    "pattern": r"\$\{[A-Za-z_]",
    "description": "a ${VAR}, ${VAR:-default} or ${VAR:?message} reference, expanded when the preset loads",
}
_SCALAR_TYPES = {"boolean", "integer", "number", "string", "null"}
_ANNOTATIONS = ("title", "description", "default", "deprecated")
_CONSTRAINTS = ("pattern", "enum", "const", "minLength", "maxLength", "format")


def json_schema() -> dict[str, Any]:
    """Draft 2020-12 schema of a preset file: bannou's camelCase keys are the documented ones,
    the other spellings the loader takes are accepted too (Dapr-era ones marked deprecated)."""
    schema = PresetSpec.model_json_schema(by_alias=True, mode="validation")
    models = _models(PresetSpec)
    _add_spellings(schema, PresetSpec)
    for name, sub in schema.get("$defs", {}).items():
        if name in models:
            _add_spellings(sub, models[name])
    _allow_interpolation(schema)
    schema.setdefault("$defs", {})[INTERPOLATED] = dict(_INTERPOLATED_SCHEMA)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "pytest-bannou preset"
    schema["required"] = [r for r in schema.get("required", []) if r != "name"]  # the file name
    return schema


def _models(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Every model reachable from ``root``, by class name (pydantic's ``$defs`` keys)."""
    found: dict[str, type[BaseModel]] = {}

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation.__name__ not in found:
                found[annotation.__name__] = annotation
                for field in annotation.model_fields.values():
                    visit(field.annotation)
            return
        for arg in typing.get_args(annotation):
            visit(arg)

    visit(root)
    return found


def _add_spellings(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Each other spelling of a key as a property with the same schema, and never two
    spellings of one key together (the loader refuses that)."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return
    by_field: dict[str, list[str]] = {}
    for spelling, field in spellings(model).items():
        by_field.setdefault(field, []).append(spelling)
    rules = []
    required = schema.get("required", [])
    for field, names in by_field.items():
        documented = display(field)
        if documented not in properties:
            continue
        if documented in required and len(names) > 1:  # any one spelling of a required key
            required.remove(documented)
            rules.append({"anyOf": [{"required": [name]} for name in sorted(names)]})
        for name in names:
            if name not in properties:
                alias = copy.deepcopy(properties[documented])
                if name in EXTRA_ALIASES.get(field, ()):
                    alias["deprecated"] = True
                alias["description"] = f"another spelling of `{documented}`"
                properties[name] = alias
        rules += [{"not": {"required": list(pair)}} for pair in itertools.combinations(sorted(names), 2)]
    if "required" in schema and not required:
        del schema["required"]
    if rules:
        schema.setdefault("allOf", []).extend(rules)


def _allow_interpolation(node: Any) -> Any:
    """Wherever a scalar other than any string goes, a ``${VAR}`` string goes too (in place)."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            node[i] = _allow_interpolation(item)
        return node
    if not isinstance(node, dict):
        return node
    for key, value in list(node.items()):
        if key in ("properties", "$defs", "patternProperties"):
            for name in value:
                value[name] = _allow_interpolation(value[name])
        elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "prefixItems"):
            node[key] = _allow_interpolation(value)
    if _needs_interpolation(node):
        notes = {key: node.pop(key) for key in _ANNOTATIONS if key in node}  # shown by editors
        return {**notes, "anyOf": [node, {"$ref": f"#/$defs/{INTERPOLATED}"}]}
    return node


def _needs_interpolation(node: dict[str, Any]) -> bool:
    """A scalar schema that a ``${VAR}`` string does not already satisfy."""
    types = node.get("type")
    if types is None:
        return "enum" in node or "const" in node
    types = {types} if isinstance(types, str) else set(types)
    if not types <= _SCALAR_TYPES or types == {"null"}:
        return False
    return "string" not in types or any(c in node for c in _CONSTRAINTS)
