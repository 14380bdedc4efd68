"""Desired state vs current state: which resources to create, update, replace, delete or leave.

The baseline of a resource is what the user *declared* when it was last applied
(``StateResource.declared``), not what AWS reports (``properties``): AWS fills defaults and
read-only attributes, and comparing against those would show changes nobody asked for. Only a
resource with no ``declared`` record (imported, or written by an older version) is compared with
what AWS reports, and then only on the properties the desired state names.

Write-only properties (secrets) are compared by digest and shown as ``(sensitive value)``.
A value that refers to a resource being created or replaced is ``(known after apply)``; if it sits
in a create-only property, the referring resource must be replaced too (the change cascades down
the dependency graph, like Terraform's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from infra_mcp.domain.interruptions import interruptions
from infra_mcp.domain.naming import fixed_name_properties
from infra_mcp.domain.paths import pointer_segments, transform_at
from infra_mcp.domain.plan import KNOWN_AFTER_APPLY, SENSITIVE, Action, Change, PropertyChange, ResourceSpec
from infra_mcp.domain.policies import snapshot_on_delete
from infra_mcp.domain.refs import as_reference, escape, is_pseudo, iter_references, scan_targets
from infra_mcp.domain.sealed import digest_matches, digest_of
from infra_mcp.domain.state import StateFile, StateResource
from infra_mcp.domain.template.intrinsics import Context, TemplateError, evaluate, is_symbolic
from infra_mcp.domain.type_catalog import TypeCatalog
from infra_mcp.domain.typefacts import TypeFacts, type_facts
from infra_mcp.errors import ValidationFailed

_MISSING: Any = object()


@dataclass(slots=True)
class _Raw:
    """A property difference before it is rendered for display."""

    pointer: str
    before: Any
    after: Any
    sensitive: bool = False
    requires_replacement: bool = False
    forced_by: str | None = None  # name of the replaced/created resource whose new value flows in here
    conditional: bool = False  # a conditional create-only property: replacement depends on the value


@dataclass(slots=True)
class _Work:
    spec: ResourceSpec
    existing: StateResource | None
    facts: TypeFacts
    action: Action
    raws: list[_Raw] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def diff_states(
    desired: list[ResourceSpec],
    current: StateFile | None,
    catalog: TypeCatalog,
    *,
    full: bool,
    graph: Mapping[str, set[str]] | None = None,
    include_noops: bool = True,
    delete: Sequence[str] = (),
) -> list[Change]:
    """Compare a desired state with the current one.

    Args:
        desired: The resources wanted (parsed and validated).
        current: The current state, or None for a project never applied.
        catalog: Type knowledge (create-only and write-only properties, identifiers).
        full: True if ``desired`` is the whole project: resources it lacks are deleted.
            False for one-resource plans: only the named resources are compared.
        graph: The dependency graph of ``desired`` if the caller has it (saves a walk).
        include_noops: False leaves unchanged resources out (a 100,000-resource plan would
            otherwise carry 100,000 no-op entries).
        delete: Names to delete even when ``full`` is False (one-resource delete plans).

    Returns:
        One :class:`Change` per desired resource (no-ops included), then one per deletion.
    """
    existing = {r.name: r for r in current.resources} if current is not None else {}
    if graph is None:
        graph = {s.name: _targets(s) for s in desired}
    facts = _FactsCache(catalog)
    work: dict[str, _Work] = {}
    changing: set[str] = set()  # names whose identifier changes: created or replaced
    for spec in desired:
        item = _compare(spec, existing.get(spec.name), facts(spec.type, spec.region))
        if item.action in (Action.CREATE, Action.REPLACE):
            changing.add(spec.name)
        work[spec.name] = item
    if changing:
        _propagate(work, graph, changing)

    display = _Display(existing, changing)
    changes = [
        _to_change(work[s.name], display) for s in desired if include_noops or work[s.name].action is not Action.NOOP
    ]
    wanted = work.keys()
    doomed = [r for r in existing.values() if r.name not in wanted] if full else []
    doomed += [existing[n] for n in dict.fromkeys(delete) if n in existing and n not in wanted and not full]
    changes.extend(_deletion(resource, catalog, display) for resource in doomed)
    return changes


def _targets(spec: ResourceSpec) -> set[str]:
    deps, _ = scan_targets(spec.properties)
    deps.update(spec.depends_on)
    deps.discard(spec.name)
    return deps


class _FactsCache:
    """Type facts per (type, region) for one diff: one dict lookup per resource."""

    def __init__(self, catalog: TypeCatalog) -> None:
        self.catalog = catalog
        self.cache: dict[tuple[str, str], TypeFacts] = {}

    def __call__(self, type_name: str, region: str) -> TypeFacts:
        key = (type_name, region)
        found = self.cache.get(key)
        if found is None:
            found = self.cache[key] = type_facts(self.catalog, type_name, region)
        return found


def _propagate(work: dict[str, _Work], graph: Mapping[str, set[str]], changing: set[str]) -> None:
    """Spread new identifiers down the graph: referrers get ``(known after apply)``, maybe replaced.

    Level by level from the created/replaced resources: each level is one pass of C-speed set
    tests over the graph, and there are as many levels as the replacements cascade (usually one).
    """
    frontier = set(changing)
    while frontier:
        following: set[str] = set()
        for name, deps in graph.items():
            if not deps or deps.isdisjoint(frontier):
                continue
            item = work.get(name)
            if item is None or item.existing is None:
                continue
            was_replacing = item.action is Action.REPLACE
            _cascade(item, changing)
            if item.action is Action.REPLACE and not was_replacing:
                following.add(name)
        changing.update(following)
        frontier = following


def _baseline(resource: StateResource, wanted: Mapping[str, Any]) -> dict[str, Any]:
    if resource.declared or not resource.properties:
        return resource.declared
    # No record of what was declared (imported resource): compare only what is asked for now,
    # so AWS's defaults for everything else do not read as removals.
    return {k: resource.properties[k] for k in wanted if k in resource.properties}


def _compare(spec: ResourceSpec, resource: StateResource | None, facts: TypeFacts) -> _Work:
    if resource is None:
        item = _Work(spec, None, facts, Action.CREATE)
        for key, value in spec.properties.items():
            pointer = "/" + escape(key)
            secret = _is_secret(facts, pointer, value)
            item.raws.append(_Raw(pointer, _MISSING, value if secret else _masked(facts, key, value), sensitive=secret))
        for key, value in spec.tags.items():
            item.raws.append(_Raw("/Tags/" + escape(key), _MISSING, value))
        return item

    if resource.type != spec.type or resource.region != spec.region:
        item = _Work(spec, resource, facts, Action.REPLACE)
        if resource.type != spec.type:
            item.reasons.append(f"type changes from {resource.type} to {spec.type} (a resource cannot change type)")
        if resource.region != spec.region:
            item.reasons.append(
                f"region changes from {resource.region} to {spec.region} (a resource cannot move region)"
            )
        _diff_value(_baseline(resource, spec.properties), spec.properties, "", facts, item.raws)
        _diff_tags(resource.tags, spec.tags, item.raws)
        _mark_create_only(item)
        return item

    baseline = _baseline(resource, spec.properties)
    item = _Work(spec, resource, facts, Action.NOOP)
    # Fast path: most resources of a big state are unchanged, and dict equality runs in C.
    if baseline == spec.properties and resource.tags == spec.tags:
        return item
    _diff_value(baseline, spec.properties, "", facts, item.raws)
    _diff_tags(resource.tags, spec.tags, item.raws)
    if item.raws:
        item.action = Action.UPDATE
        _mark_create_only(item)
        _decide_replacement(item)
    return item


def _mark_create_only(item: _Work) -> None:
    facts = item.facts
    tag_property = facts.info.tag_property
    tags_create_only = tag_property is not None and facts.is_create_only("/" + escape(tag_property))
    for raw in item.raws:
        if raw.pointer.startswith("/Tags/") and raw.pointer.count("/") == 2:
            # Tags declared in ``tags`` live under the type's tag property, whatever it is called.
            raw.requires_replacement = tags_create_only
        else:
            raw.requires_replacement = facts.is_create_only(raw.pointer)
            if not raw.requires_replacement and facts.conditional_create_only:
                # CloudFormation replaces the resource for some changes of these and not others;
                # the plan takes the safe side and says that it did.
                raw.conditional = facts.is_conditionally_create_only(raw.pointer)
                raw.requires_replacement = raw.conditional


def _is_secret(facts: TypeFacts, pointer: str, value: Any) -> bool:
    """True if the value at ``pointer`` is itself a secret (a container merely holding one is not)."""
    return digest_of(value) is not None or (bool(facts.secret) and facts.is_secret(pointer))


def _masked(facts: TypeFacts, key: str, value: Any) -> Any:
    """``value`` of top-level property ``key`` with write-only parts inside it hidden."""
    return _masked_at(facts, "/" + escape(key), value)


def _masked_at(facts: TypeFacts, pointer: str, value: Any) -> Any:
    """``value`` found at ``pointer`` with the write-only parts inside it hidden."""
    if value is _MISSING or not isinstance(value, dict | list) or not facts.covers_secret(pointer):
        return value
    segments = pointer_segments(pointer)
    inner = []
    for pattern in facts.secret:
        head = pattern[: len(segments)]
        if len(pattern) > len(segments) and all(p in (s, "*") for p, s in zip(head, segments, strict=True)):
            inner.append(pattern[len(segments) :])
    return transform_at({"v": value}, [("v", *p) for p in inner], lambda _: SENSITIVE)["v"] if inner else value


def _diff_tags(before: Mapping[str, str], after: Mapping[str, str], out: list[_Raw]) -> None:
    if before == after:
        return
    for key in [*after, *(k for k in before if k not in after)]:
        old, new = before.get(key, _MISSING), after.get(key, _MISSING)
        if old != new:
            out.append(_Raw("/Tags/" + escape(key), old, new))


def _is_leaf(value: Any) -> bool:
    return (
        not isinstance(value, dict | list)
        or as_reference(value) is not None
        or digest_of(value) is not None
        or _is_function(value)
    )


def _is_function(value: Any) -> bool:
    """``{"Fn::Sub": ...}`` and the like: one value, compared and shown whole."""
    return type(value) is dict and len(value) == 1 and next(iter(value)).startswith("Fn::")


def _diff_value(before: Any, after: Any, pointer: str, facts: TypeFacts, out: list[_Raw]) -> None:
    """Append the differences between two property trees (iteratively, for deep trees)."""
    work: list[tuple[Any, Any, str]] = [(before, after, pointer)]
    found: list[_Raw] = []
    while work:
        old, new, where = work.pop()
        secret = bool(where) and _is_secret(facts, where, old if old is not _MISSING else new)
        if not secret and new is not _MISSING and digest_of(new) is not None:
            secret = True
        if secret:
            if not _same_secret(old, new):
                found.append(_Raw(where, old, new, sensitive=True))
            continue
        if isinstance(old, dict) and isinstance(new, dict) and not _is_leaf(old) and not _is_leaf(new):
            for key in [*new, *(k for k in old if k not in new)]:
                o, n = old.get(key, _MISSING), new.get(key, _MISSING)
                if o is _MISSING or n is _MISSING or o != n:
                    work.append((o, n, f"{where}/{escape(key)}"))
        elif isinstance(old, list) and isinstance(new, list) and where and facts.is_unordered(where):
            if not _same_set(old, new):
                found.append(_Raw(where, old, new))
        elif isinstance(old, list) and isinstance(new, list) and where:
            for i in range(max(len(old), len(new))):
                o = old[i] if i < len(old) else _MISSING
                n = new[i] if i < len(new) else _MISSING
                if o is _MISSING or n is _MISSING or o != n:
                    work.append((o, n, f"{where}/{i}"))
        elif old != new:
            found.append(_Raw(where, old, new))
    # The stack visits siblings in reverse; sort for a stable, readable order.
    found.sort(key=lambda r: r.pointer)
    out.extend(found)


def _same_set(old: list[Any], new: list[Any]) -> bool:
    """Whether two lists hold the same items in any order (AWS keeps ``insertionOrder: false`` lists as sets)."""
    if len(old) != len(new):
        return False
    from deepdiff import DeepDiff  # imported late: only reordered lists need it

    return not DeepDiff(old, new, ignore_order=True)


def _same_secret(old: Any, new: Any) -> bool:
    """Whether two secret values (clear, sealed or digested) are the same secret.

    A clear value is compared with a digest in the digest's own form. Two digests of different
    forms (one written before digests were keyed) cannot be compared: they count as a change,
    which a following execution settles by writing the keyed form.
    """
    if old is _MISSING or old is None or new is _MISSING or new is None:
        return (old is _MISSING or old is None) and (new is _MISSING or new is None)
    old_digest, new_digest = digest_of(old), digest_of(new)
    if old_digest is not None and new_digest is not None:
        return old_digest == new_digest
    if old_digest is not None:
        return digest_matches(new, old_digest)
    if new_digest is not None:
        return digest_matches(old, new_digest)
    return bool(old == new)


def _decide_replacement(item: _Work) -> None:
    forcing = [r for r in item.raws if r.requires_replacement]
    if not forcing:
        return
    item.action = Action.REPLACE
    seen: set[str] = set()
    for raw in forcing:
        label = raw.pointer.lstrip("/")
        if label in seen:
            continue
        seen.add(label)
        if raw.conditional:
            item.reasons.append(
                f"{label} (conditional create-only: CloudFormation replaces the resource for some changes "
                "of it, depending on the old and new values; planned as a replacement to be safe)"
            )
        elif raw.forced_by:
            item.reasons.append(
                f"{label} (create-only: changing it forces replacement; it refers to {raw.forced_by}, "
                "which gets a new identifier)"
            )
        else:
            item.reasons.append(f"{label} (create-only: changing it forces replacement)")


def _cascade(item: _Work, changing: set[str]) -> None:
    """Values referring to a created/replaced resource change too: mark them, maybe replace."""
    covered = {r.pointer for r in item.raws}
    added = False
    for ref in iter_references(item.spec.properties):
        if ref.malformed or ref.target not in changing:
            continue
        if any(ref.path == c or ref.path.startswith(c + "/") for c in covered):
            continue
        value = _value_at(item.spec.properties, ref.path)
        raw = _Raw(ref.path, value, value, forced_by=ref.target)
        raw.requires_replacement = item.facts.is_create_only(ref.path)
        item.raws.append(raw)
        covered.add(ref.path)
        added = True
    if not added:
        return
    item.raws.sort(key=lambda r: r.pointer)
    if item.action is Action.NOOP:
        item.action = Action.UPDATE
    if item.action is Action.UPDATE:
        _decide_replacement(item)
    elif item.action is Action.REPLACE:
        item.reasons.clear()
        _decide_replacement(item)


def _value_at(tree: Any, pointer: str) -> Any:
    node = tree
    for segment in pointer.lstrip("/").split("/"):
        key = segment.replace("~1", "/").replace("~0", "~")
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


class _Display:
    """Turns raw values into what a person should see: refs resolved when known, secrets hidden."""

    def __init__(self, existing: Mapping[str, StateResource], changing: set[str]) -> None:
        self.existing = existing
        self.changing = changing

    def show(self, value: Any, *, current: bool = False) -> tuple[Any, bool]:
        """(display value, whether something in it is known only after apply).

        With ``current`` the value is shown as it is now (a "before"): references resolve to the
        existing resources even if the plan replaces them.
        """
        if value is _MISSING:
            return None, False
        if digest_of(value) is not None:
            return SENSITIVE, False
        ref = as_reference(value)
        if ref is not None:
            return self._resolve(ref.target, ref.attribute, current=current)
        if _is_function(value):
            return self._evaluate(value, current=current)
        if isinstance(value, dict):
            unknown = False
            shown: dict[str, Any] = {}
            for k, v in value.items():
                shown[k], u = self.show(v, current=current)
                unknown = unknown or u
            return shown, unknown
        if isinstance(value, list):
            items = [self.show(v, current=current) for v in value]
            return [v for v, _ in items], any(u for _, u in items)
        return value, False

    def _evaluate(self, value: Any, *, current: bool) -> tuple[Any, bool]:
        """A function over other resources' values: its result if they are all known, else unknown."""

        def known(name: str, attribute: str | None) -> Any:
            shown, unknown = self._resolve(name, attribute, current=current)
            return None if unknown else shown

        try:
            result = evaluate(value, Context(resource_value=known))
        except TemplateError:
            return KNOWN_AFTER_APPLY, True
        if is_symbolic(result):
            return KNOWN_AFTER_APPLY, True
        return result, False

    def _resolve(self, target: str, attribute: str | None, *, current: bool) -> tuple[Any, bool]:
        if is_pseudo(target) or (target in self.changing and not current):
            return KNOWN_AFTER_APPLY, True
        resource = self.existing.get(target)
        if resource is None:
            return KNOWN_AFTER_APPLY, True
        if attribute is None:
            return (resource.id, False) if resource.id else (KNOWN_AFTER_APPLY, True)
        node: Any = resource.properties
        for part in attribute.split("."):
            if not isinstance(node, dict) or part not in node:
                return KNOWN_AFTER_APPLY, True
            node = node[part]
        return node, False


def _to_change(item: _Work, display: _Display) -> Change:
    property_changes: list[PropertyChange] = []
    for raw in item.raws:
        if raw.sensitive:
            property_changes.append(
                PropertyChange(
                    path=raw.pointer,
                    before=None if raw.before is _MISSING else SENSITIVE,
                    after=None if raw.after is _MISSING else SENSITIVE,
                    requires_replacement=raw.requires_replacement,
                    sensitive=True,
                )
            )
            continue
        before, _ = display.show(_masked_at(item.facts, raw.pointer, raw.before), current=True)
        if raw.forced_by is not None:
            after, unknown = KNOWN_AFTER_APPLY, True
        else:
            after, unknown = display.show(_masked_at(item.facts, raw.pointer, raw.after))
        property_changes.append(
            PropertyChange(
                path=raw.pointer,
                before=before,
                after=after,
                requires_replacement=raw.requires_replacement,
                known_after_apply=unknown,
            )
        )
    strategy = None
    interrupted: list[str] = []
    retained, snapshot = False, None
    if item.action is Action.REPLACE:
        strategy = _strategy(item)
        # UpdateReplacePolicy (the new template's, as CloudFormation applies it) decides the old one's fate.
        retained = item.spec.replace_policy == "Retain"
        if item.spec.replace_policy == "Snapshot" and item.existing is not None:
            snapshot = snapshot_on_delete(item.existing.type, item.existing.declared)
    elif item.action is Action.UPDATE:
        interrupted = interruptions(item.spec.type, (r.pointer.lstrip("/").split("/")[0] for r in item.raws))
    resource = item.existing
    return Change(
        name=item.spec.name,
        type=item.spec.type,
        action=item.action,
        previous_type=resource.type if resource is not None and resource.type != item.spec.type else None,
        region=item.spec.region,
        physical_id=resource.id if resource is not None else None,
        property_changes=property_changes,
        replacement_reasons=item.reasons,
        replacement_strategy=strategy,
        interruptions=interrupted,
        retained=retained,
        snapshot=snapshot,
        desired=item.spec,
    )


def _strategy(item: _Work) -> str:
    """Create the new one first unless a fixed, user-given name would make the two collide."""
    if item.existing is not None and item.existing.type != item.spec.type:
        return "create_before_delete"  # a different type is a different namespace: no collision
    changed = {r.pointer.lstrip("/").split("/")[0] for r in item.raws if not r.forced_by}
    for prop in fixed_name_properties(item.facts.info):
        if prop in item.spec.properties and prop not in changed:
            return "delete_before_create"
    return "create_before_delete"


def _deletion(resource: StateResource, catalog: TypeCatalog, display: _Display) -> Change:
    facts: TypeFacts | None
    try:
        facts = type_facts(catalog, resource.type, resource.region)
    except ValidationFailed:  # a type the catalog no longer knows can still be deleted
        facts = None
    changes: list[PropertyChange] = []
    for key, value in resource.declared.items():
        pointer = "/" + escape(key)
        secret = digest_of(value) is not None or (facts is not None and facts.is_secret(pointer))
        shown = _masked(facts, key, value) if facts is not None else value
        before = SENSITIVE if secret else display.show(shown, current=True)[0]
        changes.append(PropertyChange(path=pointer, before=before, after=None, sensitive=secret))
    return Change(
        name=resource.name,
        type=resource.type,
        action=Action.DELETE,
        region=resource.region,
        physical_id=resource.id,
        property_changes=changes,
        depends_on=[],
        retained=resource.deletion_policy in ("Retain", "RetainExceptOnCreate"),
        snapshot=snapshot_on_delete(resource.type, resource.declared)
        if resource.deletion_policy == "Snapshot"
        else None,
    )
