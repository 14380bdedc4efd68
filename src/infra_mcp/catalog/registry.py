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
from functools import cache
from pathlib import Path

from infra_mcp.domain.type_catalog import ResourceTypeInfo
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


class Catalog:
    """Lazy, cached, thread-safe access to the registry schemas of one or more regions.

    The adapter behind the domain's :class:`~infra_mcp.domain.type_catalog.TypeCatalog` port.
    """

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
