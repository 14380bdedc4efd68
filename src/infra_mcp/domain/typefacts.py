"""Per-type facts the planner asks about for every resource, computed once per type.

``Catalog.get`` normalises the name and takes a lock on each call; at 100,000 resources that adds
up, so the planner asks it once per (type, region) and keeps the compiled path patterns here.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

from infra_mcp.catalog.registry import Catalog, ResourceTypeInfo
from infra_mcp.domain.paths import Pattern, compile_patterns, matches, pointer_segments


@dataclass(frozen=True, slots=True)
class TypeFacts:
    info: ResourceTypeInfo
    create_only: tuple[Pattern, ...]
    write_only: tuple[Pattern, ...]
    read_only: tuple[Pattern, ...]

    @property
    def type_name(self) -> str:
        return self.info.type_name

    def is_create_only(self, pointer: str) -> bool:
        return matches(self.create_only, pointer_segments(pointer), prefix_ok=True)

    def is_write_only(self, pointer: str) -> bool:
        return matches(self.write_only, pointer_segments(pointer))

    def covers_write_only(self, pointer: str) -> bool:
        """True if ``pointer`` is a write-only value or a container holding one."""
        return matches(self.write_only, pointer_segments(pointer), prefix_ok=True)


_CACHES: weakref.WeakKeyDictionary[Catalog, dict[tuple[str, str], TypeFacts]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def type_facts(catalog: Catalog, type_name: str, region: str) -> TypeFacts:
    """The facts of ``type_name`` in ``region``, cached per catalog.

    Raises:
        ValidationFailed: the type is unknown (VALIDATION_001).
    """
    cache = _CACHES.get(catalog)
    if cache is None:
        with _LOCK:
            cache = _CACHES.setdefault(catalog, {})
    key = (type_name, region)
    found = cache.get(key)
    if found is None:
        info = catalog.get(type_name, region)
        found = TypeFacts(
            info=info,
            create_only=compile_patterns(info.create_only_properties),
            write_only=compile_patterns(info.write_only_properties),
            read_only=compile_patterns(info.read_only_properties),
        )
        cache[key] = found
    return found
