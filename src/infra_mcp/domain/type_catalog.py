"""Resource type knowledge as the domain sees it: a port, and the facts of one type's schema.

The domain never reads a schema file. Services hand it a :class:`TypeCatalog` (in production the
``catalog`` package, which reads the registry schemas cfn-lint ships); a test can hand it a few
schemas held in a dict. :class:`ResourceTypeInfo` is pure: it answers questions about a schema
that is already in memory.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Protocol


class TypeCatalog(Protocol):
    """Where the domain looks resource types up (``catalog.Catalog`` in production)."""

    def get(self, type_name: str, region: str | None = None) -> ResourceTypeInfo:
        """The type's schema facts. Raises ValidationFailed (VALIDATION_001) for an unknown type."""
        ...

    def normalize(self, type_name: str, region: str | None = None) -> str:
        """``EC2::VPC`` or any casing -> ``AWS::EC2::VPC``. Raises ValidationFailed for an unknown type."""
        ...

    @staticmethod
    def regions() -> list[str]:
        """Regions whose types are known."""
        ...


def _strip(pointer: str) -> str:
    """``/properties/VpcEncryptionControl/VpcId`` -> ``VpcEncryptionControl/VpcId``."""
    return pointer.removeprefix("/properties/")


class ResourceTypeInfo:
    """What the registry schema says about one resource type.

    Property lists are paths relative to the resource's properties, ``/``-separated, e.g.
    ``CidrBlock`` or ``VpcEncryptionControl/VpcId``.
    """

    def __init__(self, type_name: str, schema: dict[str, Any]) -> None:
        self.type_name = type_name
        self.schema = schema

    @cached_property
    def primary_identifier(self) -> list[str]:
        return [_strip(p) for p in self.schema.get("primaryIdentifier", [])]

    @cached_property
    def create_only_properties(self) -> list[str]:
        return [_strip(p) for p in self.schema.get("createOnlyProperties", [])]

    @cached_property
    def conditional_create_only_properties(self) -> list[str]:
        return [_strip(p) for p in self.schema.get("conditionalCreateOnlyProperties", [])]

    @cached_property
    def read_only_properties(self) -> list[str]:
        return [_strip(p) for p in self.schema.get("readOnlyProperties", [])]

    @cached_property
    def write_only_properties(self) -> list[str]:
        return [_strip(p) for p in self.schema.get("writeOnlyProperties", [])]

    @cached_property
    def required_properties(self) -> list[str]:
        return list(self.schema.get("required", []))

    @cached_property
    def properties(self) -> dict[str, Any]:
        return dict(self.schema.get("properties", {}))

    @cached_property
    def tagging(self) -> dict[str, Any]:
        return dict(self.schema.get("tagging", {}))

    @property
    def taggable(self) -> bool:
        tagging = self.tagging
        if tagging:
            return bool(tagging.get("taggable", True))
        return "Tags" in self.properties

    @property
    def tag_property(self) -> str | None:
        """Top-level property that holds tags, e.g. ``Tags``; None if the type is not taggable."""
        if not self.taggable:
            return None
        pointer = self.tagging.get("tagProperty")
        if isinstance(pointer, str):
            return _strip(pointer).split("/")[0]
        return "Tags" if "Tags" in self.properties else None

    @property
    def tags_are_list(self) -> bool:
        """True if tags are ``[{"Key": k, "Value": v}]`` (most types); False if a ``{k: v}`` map."""
        prop = self.tag_property
        if prop is None:
            return False
        definition = self.resolve(self.properties.get(prop, {}))
        return definition.get("type") == "array" or "items" in definition

    @cached_property
    def has_arn(self) -> bool:
        return any(p.split("/")[-1] in {"Arn", f"{self.short_name}Arn"} for p in self.read_only_properties)

    @property
    def service(self) -> str:
        return self.type_name.split("::")[1]

    @property
    def short_name(self) -> str:
        return self.type_name.split("::")[2]

    def resolve(self, definition: dict[str, Any]) -> dict[str, Any]:
        """Follow a local ``$ref`` (``#/definitions/X``) once; return the definition itself otherwise."""
        ref = definition.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            name = ref.removeprefix("#/definitions/")
            resolved = self.schema.get("definitions", {}).get(name)
            if isinstance(resolved, dict):
                return resolved
        return definition

    def is_create_only(self, path: str) -> bool:
        """True if a change at ``path`` (or under it / above it) forces replacement."""
        return any(
            path == p or path.startswith(p + "/") or p.startswith(path + "/") for p in self.create_only_properties
        )

    def is_write_only(self, path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in self.write_only_properties)

    def is_read_only(self, path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in self.read_only_properties)

    def summary(self) -> dict[str, Any]:
        return {
            "type_name": self.type_name,
            "primary_identifier": self.primary_identifier,
            "required": self.required_properties,
            "create_only": self.create_only_properties,
            "read_only": self.read_only_properties,
            "write_only": self.write_only_properties,
            "taggable": self.taggable,
            "tag_property": self.tag_property,
        }
