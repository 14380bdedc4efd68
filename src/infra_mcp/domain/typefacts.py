"""Per-type facts the planner asks about for every resource, computed once per type.

The catalog's ``get`` normalises the name and takes a lock on each call; at 100,000 resources that adds
up, so the planner asks it once per (type, region) and keeps the compiled path patterns here.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any

from infra_mcp.domain.interruptions import in_place
from infra_mcp.domain.paths import Pattern, compile_patterns, matches, pointer_segments
from infra_mcp.domain.type_catalog import ResourceTypeInfo, TypeCatalog

# Write-only is not the same as secret: a replica's source, a Lambda's code location or launch
# template data are write-only (AWS does not read them back) but a reviewer must see them. Only
# write-only values named like a secret are sealed and hidden.
_SECRET_ENDINGS = (
    "password",
    "passwords",
    "secret",
    "secretstring",
    "secretkey",
    "secrettoken",
    "privatekey",
    "presharedkey",
    "accesskey",
    "token",
    "apikey",
    "apikeyvalue",
    "keytab",
    "credential",
    "credentials",
    "hostkeybody",
)
# Switches and settings about a secret, not the secret: ManageMasterUserPassword, NoPasswordRequired...
_SETTING_PREFIXES = ("manage", "rotate", "no", "generate", "remove")
_NOT_SECRET = frozenset({"clienttoken"})  # an idempotency token


def is_secret_name(name: str) -> bool:
    """Whether a write-only property of this name holds a secret (``MasterUserPassword``, ``SecretString``)."""
    lower = name.lower()
    return lower.endswith(_SECRET_ENDINGS) and not lower.startswith(_SETTING_PREFIXES) and lower not in _NOT_SECRET


def _secret_paths(info: ResourceTypeInfo) -> list[str]:
    """Write-only paths that hold secrets: named like one, or secret-named fields inside one.

    ``AWS::AmazonMQ::Broker`` declares all of ``Users`` write-only; only ``Users/*/Password`` is a
    secret, the user names are shown.
    """
    definitions = info.schema.get("definitions", {})
    properties = info.schema.get("properties", {})
    kept: list[str] = []
    for path in info.write_only_properties:
        named = [segment for segment in path.split("/") if segment not in ("*", "")]
        if any(is_secret_name(segment) for segment in named):
            kept.append(path)
            continue
        node: Any = {"properties": properties}
        for segment in path.split("/"):
            node = _deref(node, definitions)
            node = node.get("items", {}) if segment == "*" else node.get("properties", {}).get(segment, {})
        kept.extend(f"{path}/{inner}" for inner in _nested_secrets(node, definitions, 0))
    return kept


def _unordered_paths(info: ResourceTypeInfo) -> list[str]:
    """Paths of the lists the schema marks ``insertionOrder: false`` (Tags, security group rules...)."""
    definitions = info.schema.get("definitions", {})
    found: list[str] = []
    work: list[tuple[Any, str, int]] = [
        (child, name, 0) for name, child in (info.schema.get("properties") or {}).items()
    ]
    while work:
        node, path, depth = work.pop()
        node = _deref(node, definitions)
        if depth > 5:
            continue
        if node.get("type") == "array" or "items" in node:
            if node.get("insertionOrder") is False:
                found.append(path)
            work.append((node.get("items", {}), f"{path}/*", depth + 1))
        for name, child in (node.get("properties") or {}).items():
            work.append((child, f"{path}/{name}", depth + 1))
    return found


def _deref(node: Any, definitions: dict[str, Any]) -> dict[str, Any]:
    for _ in range(10):
        if not isinstance(node, dict) or "$ref" not in node:
            break
        node = definitions.get(str(node["$ref"]).rsplit("/", 1)[-1], {})
    return node if isinstance(node, dict) else {}


def _nested_secrets(node: Any, definitions: dict[str, Any], depth: int) -> list[str]:
    node = _deref(node, definitions)
    if depth > 6:
        return []
    if "items" in node:
        return [f"*/{inner}" for inner in _nested_secrets(node["items"], definitions, depth + 1)]
    found: list[str] = []
    for name, child in (node.get("properties") or {}).items():
        if is_secret_name(name):
            found.append(name)
        else:
            found.extend(f"{name}/{inner}" for inner in _nested_secrets(child, definitions, depth + 1))
    return found


@dataclass(frozen=True, slots=True)
class TypeFacts:
    info: ResourceTypeInfo
    create_only: tuple[Pattern, ...]
    write_only: tuple[Pattern, ...]
    read_only: tuple[Pattern, ...]
    secret: tuple[Pattern, ...] = ()
    conditional_create_only: tuple[Pattern, ...] = ()
    unordered: tuple[Pattern, ...] = ()

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

    def is_conditionally_create_only(self, pointer: str) -> bool:
        """True if changing ``pointer`` replaces the resource in some cases (``conditionalCreateOnlyProperties``)."""
        return matches(self.conditional_create_only, pointer_segments(pointer), prefix_ok=True)

    def is_unordered(self, pointer: str) -> bool:
        """True if the list at ``pointer`` is a set to AWS (``insertionOrder: false``): order is no change."""
        return bool(self.unordered) and matches(self.unordered, pointer_segments(pointer))

    def is_secret(self, pointer: str) -> bool:
        """True if ``pointer`` is a secret: write-only and named like one (sealed, never shown)."""
        return matches(self.secret, pointer_segments(pointer))

    def covers_secret(self, pointer: str) -> bool:
        """True if ``pointer`` is a secret or a container holding one."""
        return matches(self.secret, pointer_segments(pointer), prefix_ok=True)


_CACHES: weakref.WeakKeyDictionary[TypeCatalog, dict[tuple[str, str], TypeFacts]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def type_facts(catalog: TypeCatalog, type_name: str, region: str) -> TypeFacts:
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
            secret=compile_patterns(_secret_paths(info)),
            unordered=compile_patterns(_unordered_paths(info)),
            conditional_create_only=compile_patterns(
                [p for p in info.conditional_create_only_properties if not in_place(info.type_name, p.split("/")[0])]
            ),
        )
        cache[key] = found
    return found
