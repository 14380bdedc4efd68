"""Tags in the shape a resource type takes them: the one place that merges ``tags`` into properties.

Validation checks, and execution sends, the document this module builds, so the value AWS receives
is the value that was checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class TagShape(Protocol):
    """What a type says about its tags (``catalog.ResourceTypeInfo`` has both)."""

    @property
    def tag_property(self) -> str | None: ...

    @property
    def tags_are_list(self) -> bool: ...


def with_tags(properties: Mapping[str, Any], tags: Mapping[str, str], shape: TagShape) -> dict[str, Any]:
    """``properties`` with ``tags`` written into the type's tag property, in the type's format.

    Tags given in the properties themselves are kept; the ``tags`` map wins on the same key. A list
    of tags comes out sorted by key. A type that is not taggable gets no tags (validation reports
    that as a finding).
    """
    prop = shape.tag_property
    result = dict(properties)
    if not tags or prop is None:
        return result
    existing = result.get(prop)
    if shape.tags_are_list:
        merged = {t["Key"]: t.get("Value") for t in existing or [] if isinstance(t, dict) and "Key" in t}
        merged.update(tags)
        result[prop] = [{"Key": k, "Value": v} for k, v in sorted(merged.items())]
    else:
        result[prop] = {**(existing if isinstance(existing, dict) else {}), **tags}
    return result
