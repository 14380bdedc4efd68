"""CloudFormation's scalar conversions, applied before validation and before sending.

CloudFormation accepts ``EnableDnsSupport: "true"``, ``"100"`` for an integer, ``256`` for a string
and a tag ``Value: 1``, converting each to the type the resource schema declares. A template that
CloudFormation and cfn-lint accept must plan here too, so the same conversions are made on the
declared properties, guided by the type's registry schema. Values of other shapes are left alone
for validation to report; references, functions and sealed secrets are never touched.
"""

from __future__ import annotations

import re
from typing import Any

from infra_mcp.domain.type_catalog import ResourceTypeInfo

_INTEGER = re.compile(r"[-+]?[0-9]+")
_NUMBER = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")


def coerce_properties(properties: dict[str, Any], info: ResourceTypeInfo) -> dict[str, Any]:
    """``properties`` with scalars converted to the schema's types as CloudFormation does.

    Returns:
        The same object when nothing needed converting (the common case), else a new tree.
    """
    schema = info.schema
    top = {"type": "object", "properties": schema.get("properties", {})}
    result = _coerce(properties, top, schema.get("definitions", {}), 0)
    return result if isinstance(result, dict) else properties


def _resolve(node: Any, definitions: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 10:
        ref = str(node["$ref"])
        node = definitions.get(ref.rsplit("/", 1)[-1], {}) if ref.startswith("#/definitions/") else {}
        seen += 1
    return node if isinstance(node, dict) else {}


def _coerce(value: Any, schema: Any, definitions: dict[str, Any], depth: int) -> Any:
    if depth > 40:
        return value
    node = _resolve(schema, definitions)
    kind = node.get("type")
    if isinstance(value, dict):
        if len(value) == 1 and (next(iter(value)) == "Ref" or next(iter(value)).startswith("Fn::")):
            return value
        if "__sealed__" in value or "__secret_sha256__" in value:
            return value
        props = node.get("properties")
        patterns = node.get("patternProperties")
        if not isinstance(props, dict) and not isinstance(patterns, dict):
            return value
        changed: dict[str, Any] | None = None
        for key, child in value.items():
            sub = props.get(key) if isinstance(props, dict) else None
            if sub is None and isinstance(patterns, dict) and len(patterns) == 1:
                sub = next(iter(patterns.values()))
            if sub is None:
                continue
            new = _coerce(child, sub, definitions, depth + 1)
            if new is not child:
                changed = changed if changed is not None else dict(value)
                changed[key] = new
        return changed if changed is not None else value
    if isinstance(value, list):
        items = node.get("items")
        if items is None:
            return value
        converted = [_coerce(v, items, definitions, depth + 1) for v in value]
        return converted if any(a is not b for a, b in zip(converted, value, strict=True)) else value
    return _scalar(value, kind)


def _scalar(value: Any, kind: Any) -> Any:
    if not isinstance(kind, str):
        return value  # several types allowed: nothing to convert to
    if kind == "boolean" and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if kind == "integer":
        if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
    if kind == "number" and isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = float(value)
        return int(number) if _INTEGER.fullmatch(value.strip()) else number
    if kind == "string" and not isinstance(value, str) and isinstance(value, bool | int | float):
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    return value
