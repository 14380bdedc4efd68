"""Property paths as the registry schemas write them (``Foo/*/Bar``) matched against real values.

Registry schemas list create-only and write-only properties as ``/``-separated paths where ``*``
stands for any list index. These helpers answer "is this concrete path one of those" and apply a
function to every value found at such paths (to seal or digest secrets).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Pattern = tuple[str, ...]


def compile_patterns(paths: Sequence[str]) -> tuple[Pattern, ...]:
    return tuple(tuple(p.split("/")) for p in paths if p)


def _segment_matches(pattern: str, segment: str) -> bool:
    return pattern == segment or (pattern == "*" and segment.isdigit())


def matches(patterns: Sequence[Pattern], segments: Sequence[str], *, prefix_ok: bool = False) -> bool:
    """True if ``segments`` is at or under one of ``patterns``.

    With ``prefix_ok`` it is also true when ``segments`` is *above* a pattern (a whole object that
    contains a listed property was added, removed or changed).
    """
    for pattern in patterns:
        n = min(len(pattern), len(segments))
        if len(segments) < len(pattern) and not prefix_ok:
            continue
        if all(_segment_matches(pattern[i], segments[i]) for i in range(n)):
            return True
    return False


def pointer_segments(pointer: str) -> list[str]:
    """``/A/0/B~1C`` -> ``["A", "0", "B/C"]``."""
    if not pointer:
        return []
    return [s.replace("~1", "/").replace("~0", "~") for s in pointer.lstrip("/").split("/")]


def transform_at(obj: dict[str, Any], patterns: Sequence[Pattern], fn: Callable[[Any], Any]) -> dict[str, Any]:
    """Return a copy of ``obj`` with ``fn`` applied to every value at one of ``patterns``.

    Only the containers on the way to a match are copied; the rest is shared.
    """
    result = obj
    for pattern in patterns:
        result = _apply(result, pattern, fn)
    return result


def _apply(node: Any, pattern: Pattern, fn: Callable[[Any], Any]) -> Any:
    if not pattern:
        return fn(node)
    head, rest = pattern[0], pattern[1:]
    if isinstance(node, dict) and head in node:
        changed = _apply(node[head], rest, fn)
        if changed is node[head]:
            return node
        return {**node, head: changed}
    if isinstance(node, list) and head == "*":
        items = [_apply(item, rest, fn) for item in node]
        if all(a is b for a, b in zip(items, node, strict=True)):
            return node
        return items
    return node
