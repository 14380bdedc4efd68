"""Drift: what was declared against what is live, per property (pure; no I/O).

The rules, as a reviewer would expect them:

- only what the project *declared* is compared: a property AWS filled with its default, and that
  nobody declared, is not drift (nor is a key AWS added inside a declared object);
- read-only attributes (ids, ARNs, generated names) are never drift;
- write-only properties (passwords, a Lambda's code location) are not returned by AWS and cannot be
  compared: the result lists them under ``not_compared``;
- lists the schema marks ``insertionOrder: false`` are sets: order is no change, an item added or
  removed is;
- tags are compared by key; ``aws:`` tags (AWS's own) are never drift, and a tag added live counts
  only when the project declares tags at all.

A scalar declared as ``80`` and reported as ``"80"`` (or ``true`` / ``"true"``) is the same value:
Cloud Control reports some numbers and booleans as strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from infra_mcp.domain.paths import matches, pointer_segments
from infra_mcp.domain.plan import PropertyValue
from infra_mcp.domain.refs import escape
from infra_mcp.domain.sealed import digest_of
from infra_mcp.domain.typefacts import TypeFacts

_MISSING: Any = object()
AWS_TAG_PREFIX = "aws:"
TAGS = "/Tags/"


class DriftStatus(StrEnum):
    IN_SYNC = "in_sync"
    MODIFIED = "modified"
    DELETED = "deleted"  # gone live
    UNKNOWN = "unknown"  # could not be read (the error says why)


class PropertyDrift(BaseModel):
    """One declared value that is not what AWS reports. ``actual`` is None when the property is gone live."""

    path: str = Field(description="e.g. /EnableDnsSupport, /Tags/env, /SecurityGroupIngress.")
    expected: PropertyValue = None
    actual: PropertyValue = None


class ResourceDrift(BaseModel):
    name: str
    type: str
    id: str
    region: str
    status: DriftStatus
    differences: list[PropertyDrift] = Field(default_factory=list)
    not_compared: list[str] = Field(
        default_factory=list,
        description="Declared paths that cannot be compared: write-only (AWS never returns them), or referring to "
        "a resource not recorded.",
    )
    error: str = ""


class DriftReport(BaseModel):
    """The result of one detect_drift, kept as the project's last drift result."""

    project_id: str
    checked_at: datetime
    checked_by: str
    serial: int = Field(description="The state version compared against.")
    resources: list[ResourceDrift] = Field(default_factory=list)

    def count(self, status: DriftStatus) -> int:
        return sum(1 for r in self.resources if r.status is status)

    def of(self, name: str) -> ResourceDrift | None:
        return next((r for r in self.resources if r.name == name), None)


# ---- comparison ------------------------------------------------------------------------------


def compare(
    declared: Mapping[str, Any],
    live: Mapping[str, Any],
    facts: TypeFacts,
    *,
    tags: Mapping[str, str] | None = None,
) -> tuple[list[PropertyDrift], list[str]]:
    """Differences between ``declared`` properties (references resolved) and the ``live`` model.

    Args:
        declared: What the project declared, references resolved; secrets may be digests.
        live: What AWS reports (GetResource's properties).
        facts: The type's read-only, write-only and unordered paths.
        tags: Tags the project declared apart from the properties (compared by key).

    Returns:
        The differences, sorted by path, and the declared paths that could not be compared.
    """
    found: list[PropertyDrift] = []
    skipped: list[str] = []
    tag_property = facts.info.tag_property
    for key, value in declared.items():
        pointer = "/" + escape(key)
        if key == tag_property and tags:
            continue  # compared below, by key, with the tags map
        _walk(value, live.get(key, _MISSING), pointer, facts, found, skipped)
    if tag_property is not None and tags:
        live_tags = live_tag_map(live.get(tag_property))
        declared_tags = dict(tags)
        if tag_property in declared:
            declared_tags = {**live_tag_map(declared[tag_property]), **declared_tags}
        for key in sorted({*declared_tags, *live_tags}):
            expected, actual = declared_tags.get(key), live_tags.get(key)
            if expected != actual:
                found.append(PropertyDrift(path=TAGS + escape(key), expected=expected, actual=actual))
    found.sort(key=lambda d: d.path)
    return found, sorted(skipped)


def live_tag_map(value: Any) -> dict[str, str]:
    """Tags as ``{key: value}`` from a list of ``{"Key", "Value"}`` or a map; ``aws:`` tags left out."""
    pairs: dict[str, Any] = {}
    if isinstance(value, list):
        pairs = {t["Key"]: t.get("Value") for t in value if isinstance(t, dict) and isinstance(t.get("Key"), str)}
    elif isinstance(value, dict):
        pairs = dict(value)
    return {str(k): "" if v is None else str(v) for k, v in pairs.items() if not str(k).startswith(AWS_TAG_PREFIX)}


def _walk(
    expected: Any, actual: Any, pointer: str, facts: TypeFacts, found: list[PropertyDrift], skipped: list[str]
) -> None:
    segments = pointer_segments(pointer)
    if matches(facts.read_only, segments):
        return
    if digest_of(expected) is not None or matches(facts.write_only, segments):
        skipped.append(pointer)
        return
    if actual is _MISSING:
        found.append(PropertyDrift(path=pointer, expected=expected, actual=None))
        return
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key, value in expected.items():
            _walk(value, actual.get(key, _MISSING), f"{pointer}/{escape(key)}", facts, found, skipped)
        return
    if isinstance(expected, list) and isinstance(actual, list):
        if facts.is_unordered(pointer):
            if not _same_set(expected, actual):
                found.append(PropertyDrift(path=pointer, expected=expected, actual=actual))
            return
        if len(expected) != len(actual):
            found.append(PropertyDrift(path=pointer, expected=expected, actual=actual))
            return
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            _walk(e, a, f"{pointer}/{i}", facts, found, skipped)
        return
    if not same_value(expected, actual):
        found.append(PropertyDrift(path=pointer, expected=expected, actual=actual))


def covers(expected: Any, actual: Any) -> bool:
    """Whether ``actual`` holds everything ``expected`` declares (keys AWS added are defaults)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        return all(k in actual and covers(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(covers(e, a) for e, a in zip(expected, actual, strict=True))
    return same_value(expected, actual)


def _same_set(expected: list[Any], actual: list[Any]) -> bool:
    """Same items in any order: each declared item matches a distinct live one, and nothing is left over."""
    if len(expected) != len(actual):
        return False
    left = list(actual)
    for item in expected:
        match = next((i for i, candidate in enumerate(left) if covers(item, candidate)), None)
        if match is None:
            return False
        left.pop(match)
    return True


def same_value(expected: Any, actual: Any) -> bool:
    """Scalars compared as Cloud Control reports them (``80`` == ``"80"``, ``True`` == ``"true"``)."""
    if expected == actual and type(expected) is type(actual):
        return True
    if isinstance(expected, bool) or isinstance(actual, bool):
        return str(expected).lower() == str(actual).lower()
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return bool(expected == actual)
    if isinstance(expected, str) != isinstance(actual, str) and isinstance(expected, str | int | float):
        return isinstance(actual, str | int | float) and str(expected) == str(actual)
    return bool(expected == actual) and not isinstance(expected, dict | list)


# ---- what drift means for the record -----------------------------------------------------------


def with_live_values(
    properties: Mapping[str, Any], tags: Mapping[str, str], live_values: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """``properties`` and ``tags`` with each drifted path set to its live value (None: gone live).

    Used both ways out of drift: accepting records these as declared; a refreshed plan diffs
    (and execution patches) from them.
    """
    result: Any = _copy(properties)
    new_tags = dict(tags)
    for path, value in live_values.items():
        if path.startswith(TAGS):
            key = pointer_segments(path)[1] if len(pointer_segments(path)) > 1 else ""
            if value is None:
                new_tags.pop(key, None)
            else:
                new_tags[key] = str(value)
            continue
        result = _set(result, pointer_segments(path), value)
    return result, new_tags


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _set(node: Any, segments: list[str], value: Any) -> Any:
    """``node`` with the value at ``segments`` replaced (removed when ``value`` is None)."""
    if not segments:
        return value
    head, rest = segments[0], segments[1:]
    if isinstance(node, dict):
        if not rest:
            if value is None:
                node.pop(head, None)
            else:
                node[head] = value
            return node
        node[head] = _set(node.get(head, {}), rest, value)
        return node
    if isinstance(node, list) and head.isdigit() and int(head) < len(node):
        index = int(head)
        if not rest and value is None:
            node.pop(index)
        else:
            node[index] = _set(node[index], rest, value)
        return node
    return node


def live_values_of(drift: ResourceDrift) -> dict[str, Any]:
    """Path -> live value for each difference (None where the property is gone live)."""
    return {d.path: d.actual for d in drift.differences}


def writable_model(live: Mapping[str, Any], facts: TypeFacts) -> tuple[dict[str, Any], dict[str, str]]:
    """The writable properties of a live model, and its tags as a map (``aws:`` tags left out).

    What an import records as declared: everything a person could have written (read-only
    attributes and write-only values are not), with the tags apart, as a desired state holds them.
    """
    tag_property = facts.info.tag_property
    properties: dict[str, Any] = {}
    for key, value in live.items():
        segments = [key]
        if matches(facts.read_only, segments) or matches(facts.write_only, segments):
            continue
        if key == tag_property:
            continue
        properties[key] = _without_read_only(value, [key], facts)
    tags = live_tag_map(live.get(tag_property)) if tag_property else {}
    return properties, tags


def _without_read_only(value: Any, segments: list[str], facts: TypeFacts) -> Any:
    if isinstance(value, dict):
        return {
            k: _without_read_only(v, [*segments, k], facts)
            for k, v in value.items()
            if not matches(facts.read_only, [*segments, k]) and not matches(facts.write_only, [*segments, k])
        }
    if isinstance(value, list):
        return [_without_read_only(v, [*segments, str(i)], facts) for i, v in enumerate(value)]
    return value
