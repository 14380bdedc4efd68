"""Look up CloudFormation / Cloud Control resource types.

cfn-lint ships, per region, an index ``providers/<region>.json`` mapping each type name to a
content-addressed schema file in ``resources/``. We read an index only when a region is first
asked about, and a schema only when its type is first asked about; both are cached. Nothing is
hand-written per type.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import threading
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from infra_mcp.errors import ValidationFailed

DEFAULT_REGION = "us-east-1"


@cache
def _schema_root() -> Path:
    """cfn-lint's bundled registry schemas, found without importing cfn-lint.

    Importing the ``cfnlint`` package costs about a second (it loads its whole linter); the data
    files are all the catalog needs, so only the package's location is looked up.
    """
    spec = importlib.util.find_spec("cfnlint")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("cfn-lint is not installed; it ships the resource schemas infra-mcp needs")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "schemas"


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


class Catalog:
    """Lazy, cached, thread-safe access to the registry schemas of one or more regions."""

    def __init__(self, default_region: str = DEFAULT_REGION) -> None:
        self.default_region = default_region
        self._indexes: dict[str, dict[str, str]] = {}
        self._types: dict[tuple[str, str], ResourceTypeInfo] = {}
        self._lower: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def _index(self, region: str) -> dict[str, str]:
        index = self._indexes.get(region)
        if index is not None:
            return index
        with self._lock:
            if region not in self._indexes:
                path = _schema_root() / "providers" / f"{region}.json"
                if not path.is_file():
                    regions = self.regions()
                    close = difflib.get_close_matches(region, regions, n=3)
                    raise ValidationFailed(
                        f"Unknown AWS region {region!r}."
                        + (f" Did you mean {', '.join(close)}?" if close else "")
                        + " Use a region name such as 'us-east-1'.",
                        details={"region": region, "suggestions": close},
                    )
                self._indexes[region] = json.loads(path.read_text(encoding="utf-8"))
                self._lower[region] = {name.lower(): name for name in self._indexes[region]}
            return self._indexes[region]

    @staticmethod
    def regions() -> list[str]:
        folder = _schema_root() / "providers"
        return sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))

    def type_names(self, region: str | None = None) -> list[str]:
        return sorted(self._index(region or self.default_region))

    def normalize(self, type_name: str, region: str | None = None) -> str:
        """Return the canonical type name: accepts ``EC2::VPC`` and any letter case.

        Raises:
            ValidationFailed: VALIDATION_001, with the closest valid names in ``details.suggestions``.
        """
        region = region or self.default_region
        index = self._index(region)
        if not isinstance(type_name, str) or not type_name.strip():
            raise ValidationFailed(
                "Resource type is empty; use a name like 'AWS::EC2::VPC'.", details={"type": type_name}
            )
        candidate = type_name.strip()
        if candidate.count("::") == 1:
            candidate = "AWS::" + candidate
        if candidate in index:
            return candidate
        exact = self._lower[region].get(candidate.lower())
        if exact:
            return exact
        suggestions = self.suggest(type_name, region)
        raise ValidationFailed(
            f"Unknown resource type {type_name!r} in {region}."
            + (f" Did you mean {', '.join(suggestions)}?" if suggestions else "")
            + " Use a CloudFormation type name such as 'AWS::EC2::VPC' (or the shorthand 'EC2::VPC').",
            details={"type": type_name, "region": region, "suggestions": suggestions},
        )

    def suggest(self, type_name: str, region: str | None = None, n: int = 3) -> list[str]:
        region = region or self.default_region
        index = self._index(region)
        lowered = self._lower[region]
        probe = type_name.strip().lower()
        if probe.count("::") == 1:
            probe = "aws::" + probe
        matches = difflib.get_close_matches(probe, list(lowered), n=n, cutoff=0.6)
        if not matches:
            # Fall back to the last segment (e.g. 'Vpc' -> AWS::EC2::VPC).
            tail = probe.split("::")[-1]
            matches = [k for k in lowered if k.split("::")[-1] == tail][:n]
        return [lowered[m] for m in matches if lowered[m] in index]

    def get(self, type_name: str, region: str | None = None) -> ResourceTypeInfo:
        """The type's schema facts. Raises ValidationFailed for an unknown type."""
        region = region or self.default_region
        canonical = self.normalize(type_name, region)
        key = (region, canonical)
        info = self._types.get(key)
        if info is None:
            digest = self._index(region)[canonical]
            path = _schema_root() / "resources" / f"{digest}.json"
            schema = json.loads(path.read_text(encoding="utf-8"))
            info = ResourceTypeInfo(canonical, schema)
            with self._lock:
                self._types.setdefault(key, info)
                info = self._types[key]
        return info


_DEFAULT: Catalog | None = None


def default_catalog() -> Catalog:
    """The process-wide catalog (schemas are immutable, so sharing is safe)."""
    global _DEFAULT  # a lazily built module singleton is the point
    if _DEFAULT is None:
        _DEFAULT = Catalog()
    return _DEFAULT
