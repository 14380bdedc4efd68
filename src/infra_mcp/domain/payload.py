"""What execution sends to Cloud Control: resolved references, tags in the type's format, patches.

Pure functions over plain data (no I/O), kept apart from the walk so each rule is testable alone.
Secrets stay sealed through everything here except :func:`update_patch`, which receives the
already-unsealed new document and never returns a digest or a marker.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import jsonpatch

from infra_mcp.domain.paths import pointer_segments
from infra_mcp.domain.refs import reference_targets
from infra_mcp.domain.sealed import digest_matches, digest_of
from infra_mcp.domain.state import StateResource
from infra_mcp.domain.template.intrinsics import NO_VALUE, Context, TemplateError, evaluate, is_symbolic
from infra_mcp.domain.type_catalog import ResourceTypeInfo
from infra_mcp.domain.typefacts import TypeFacts


class UnresolvedReference(Exception):
    """A ``Ref`` / ``Fn::GetAtt`` whose target does not exist (yet) or lacks the attribute."""

    code = "UnresolvedReference"


def client_token(plan_id: str, name: str, operation: str) -> str:
    """Deterministic Cloud Control ClientToken: a retry after a crash repeats, never duplicates, a request."""
    return hashlib.sha256(f"{plan_id}\0{name}\0{operation}".encode()).hexdigest()[:64]


def dependencies_of(properties: Any, depends_on: list[str]) -> set[str]:
    """Logical names a resource needs: its references plus its explicit ``depends_on``."""
    return reference_targets(properties) | set(depends_on)


def _attribute(resource: StateResource, attribute: str, info: ResourceTypeInfo | None) -> Any:
    node: Any = resource.properties
    for part in attribute.split("."):
        if not isinstance(node, dict) or part not in node:
            node = None
            break
        node = node[part]
    if node is None and info is not None and info.primary_identifier == [attribute]:
        return resource.id
    return node


def resolve(
    value: Any,
    resources: Mapping[str, StateResource],
    *,
    region: str,
    type_info: Callable[[str, str], ResourceTypeInfo] | None = None,
) -> Any:
    """Evaluate the references and intrinsic functions left in a property tree, now that targets exist.

    ``Ref`` becomes the target's primary identifier, ``Fn::GetAtt`` its property, and functions
    over them (``Fn::Sub "${bucket.Arn}/*"``, ``Fn::Join``, ``Fn::Select`` of ``Fn::Cidr``...)
    are evaluated by the domain's evaluator, the one planning used.

    Args:
        value: A property tree (sealed markers pass through untouched).
        resources: Existing resources by logical name, as last recorded.
        region: For the ``AWS::Region`` pseudo parameter.
        type_info: Optional ``callable(type, region) -> ResourceTypeInfo`` to fall back on the
            primary identifier for ``Fn::GetAtt`` of it.

    Raises:
        UnresolvedReference: a target that does not exist, an attribute it lacks, or a function
            that cannot be evaluated.
    """

    def lookup(name: str, attribute: str | None) -> Any:
        target = resources.get(name)
        if target is None or not target.id:
            raise UnresolvedReference(f"{name} does not exist")
        if attribute is None:
            return target.id
        info = type_info(target.type, target.region) if type_info is not None else None
        found = _attribute(target, attribute, info)
        if found is None:
            raise UnresolvedReference(f"{name} has no attribute {attribute}")
        return found

    if not _has_function(value):
        return value
    context = Context(pseudo={"AWS::Region": region}, resource_value=lookup)
    try:
        result = evaluate(value, context)
    except TemplateError as exc:
        raise UnresolvedReference(exc.message) from None
    if result is NO_VALUE or is_symbolic(result):
        raise UnresolvedReference("a pseudo parameter other than AWS::Region cannot be resolved here")
    return result


def _has_function(value: Any) -> bool:
    if isinstance(value, dict):
        if len(value) == 1:
            key = next(iter(value))
            if key == "Ref" or key.startswith("Fn::"):
                return True
        return any(_has_function(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_function(v) for v in value)
    return False


def _align_secrets(old: Any, new: Any) -> Any:
    """``old`` with each secret digest replaced by the clear new value when the digests agree.

    State keeps secrets as digests; the new document has them in clear. An unchanged secret must
    not show up in the patch (and a changed one is replaced whole).
    """
    digest = digest_of(old)
    if digest is not None:
        return new if digest_matches(new, digest) else old
    if isinstance(old, dict) and isinstance(new, dict):
        return {k: _align_secrets(v, new[k]) if k in new else v for k, v in old.items()}
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [_align_secrets(a, b) for a, b in zip(old, new, strict=True)]
    return old


def _touches(facts: TypeFacts, pointer: str) -> bool:
    segments = pointer_segments(pointer)
    from infra_mcp.domain.paths import matches

    return matches(facts.create_only, segments, prefix_ok=True) or matches(facts.read_only, segments, prefix_ok=True)


def update_patch(old: dict[str, Any], new: dict[str, Any], facts: TypeFacts) -> list[dict[str, Any]]:
    """The RFC 6902 patch from ``old`` to ``new`` desired properties, create-only and read-only paths left out.

    Args:
        old: What was last applied (references resolved as they were, secrets as digests).
        new: What to apply now (references resolved, secrets already unsealed).
        facts: The type's create-only / read-only paths.
    """
    patch = jsonpatch.make_patch(_align_secrets(old, new), new).patch
    kept = []
    for op in patch:
        if _touches(facts, op["path"]) or ("from" in op and _touches(facts, op["from"])):
            continue
        kept.append(op)
    return kept


def strip_write_only(properties: dict[str, Any], facts: TypeFacts) -> dict[str, Any]:
    """``properties`` without any write-only value (AWS should not return them; never store one)."""
    if not facts.write_only:
        return properties

    def prune(node: Any, pattern: tuple[str, ...]) -> Any:
        if not pattern:
            return node
        head, rest = pattern[0], pattern[1:]
        if isinstance(node, dict):
            if not rest:
                return {k: v for k, v in node.items() if k != head}
            if head in node:
                return {**node, head: prune(node[head], rest)}
        if isinstance(node, list) and head == "*":
            return [prune(item, rest) for item in node]
        return node

    result: Any = properties
    for pattern in facts.write_only:
        result = prune(result, pattern)
    return dict(result)
