"""From a desired state and the current state to a validated, risk-rated, priced, ordered plan.

:func:`make_plan` is pure: no I/O, no clock beyond the plan's creation time. The service parses
the document, seals secrets and stores the result; everything in between happens here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from infra_mcp.domain.cost import Pricing, estimate
from infra_mcp.domain.desired import dependency_graph, raise_findings
from infra_mcp.domain.diff import diff_states
from infra_mcp.domain.graph import waves
from infra_mcp.domain.plan import Action, Change, Finding, Plan, PlanStatus, PlanSummary, ResourceSpec
from infra_mcp.domain.refs import reference_targets
from infra_mcp.domain.render import summary_line
from infra_mcp.domain.risk import plan_risk, with_risk
from infra_mcp.domain.state import StateFile, StateResource
from infra_mcp.domain.type_catalog import TypeCatalog
from infra_mcp.domain.validation import validate_specs

_FORWARD = (Action.CREATE, Action.UPDATE, Action.REPLACE)
# Changes after which a resource exists: ordered forward, so whatever refers to them waits for them.
_MAKES = (*_FORWARD, Action.IMPORT)
_NOTHING: frozenset[str] = frozenset()


def make_plan(
    *,
    project_id: str,
    plan_id: str,
    author: str,
    description: str,
    kind: Literal["full", "partial", "rollback"],
    desired: list[ResourceSpec],
    current: StateFile | None,
    catalog: TypeCatalog,
    full: bool,
    pricing: Pricing,
    lint: bool = True,
    delete: Sequence[str] = (),
) -> Plan:
    """Plan the changes that take ``current`` to ``desired``.

    Args:
        project_id: The project planned for.
        plan_id: The id to give the plan (``plan-<hex>``).
        author: Who asked for it.
        description: What it is for, in the author's words.
        kind: ``full`` (a whole desired state), ``partial`` (one resource), ``rollback``.
        desired: Parsed, validated resources (secrets sealed).
        current: The current state; None if the project was never applied.
        catalog: Type knowledge.
        full: True if resources missing from ``desired`` are to be deleted.
        pricing: Where prices come from (``catalog.prices.bundled_pricing()`` in production).
        lint: Run cfn-lint on the changed resources (on by default; tests of other rules may skip it).
        delete: Names of current resources to delete in a partial plan (``plan_resource`` delete).

    Returns:
        A pending plan with its fingerprint. Unchanged resources are counted in the summary
        (``no_op``) but not listed in ``changes``.

    Raises:
        ValidationFailed: VALIDATION_001 listing every error finding (schema, cfn-lint, a delete
            of something still referred to); nothing is planned.
    """
    graph = dependency_graph(desired)
    changes = diff_states(desired, current, catalog, full=full, graph=graph, include_noops=False, delete=delete)
    existing = {r.name: r for r in current.resources} if current is not None else {}

    findings = _validate(changes, desired, existing, catalog, lint=lint)
    findings.extend(_still_referenced(changes, desired, graph, existing, full=full))
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise_findings(errors + [f for f in findings if f.severity != "error"], "plan")

    changes = [with_risk(c) for c in changes]
    order, changes = _order(changes, graph, existing)
    risk, risk_reasons = plan_risk(changes)
    summary = _summary(changes, no_op=len(desired) - sum(1 for c in changes if c.action is not Action.DELETE))
    plan = Plan(
        id=plan_id,
        project_id=project_id,
        description=description,
        author=author,
        kind=kind,
        status=PlanStatus.PENDING,
        base_serial=current.serial if current is not None else 0,
        base_lineage=current.lineage if current is not None else None,
        changes=changes,
        execution_order=order,
        summary=summary,
        risk=risk,
        risk_reasons=risk_reasons,
        findings=findings,
        cost=estimate(changes, current, pricing),
    )
    return plan.with_fingerprint()


def _validate(
    changes: Sequence[Change],
    desired: Sequence[ResourceSpec],
    existing: Mapping[str, StateResource],
    catalog: TypeCatalog,
    *,
    lint: bool,
) -> list[Finding]:
    checked = [c.desired for c in changes if c.action in _FORWARD and c.desired is not None]
    if not checked:
        return []
    # Only the referenced ones matter: the map is built from what the checked resources name.
    wanted = set().union(*(reference_targets(s.properties) for s in checked))
    specs_by_name = {s.name: s for s in desired if s.name in wanted}
    context = {name: (s.type, s.region) for name, s in specs_by_name.items()}
    context.update({n: (existing[n].type, existing[n].region) for n in wanted if n in existing and n not in context})
    tags_only = {
        c.name
        for c in changes
        if c.action is Action.UPDATE and all(pc.path.startswith("/Tags/") for pc in c.property_changes)
    }
    return validate_specs(checked, catalog, neighbours=context, lint=lint, schema_only=tags_only)


def _state_deps(resource: StateResource) -> set[str]:
    return set(resource.depends_on) | reference_targets(resource.declared)


def _still_referenced(
    changes: Sequence[Change],
    desired: Sequence[ResourceSpec],
    graph: Mapping[str, set[str]],
    existing: Mapping[str, StateResource],
    *,
    full: bool,
) -> list[Finding]:
    """A resource may not be deleted while something that stays refers to it."""
    deleted = {c.name for c in changes if c.action is Action.DELETE}
    if not deleted:
        return []
    findings: list[Finding] = []
    declared = {s.name for s in desired}
    # Only the few resources that refer to a deleted one are sorted, not every name declared.
    users = [name for name in declared if not graph.get(name, _NOTHING).isdisjoint(deleted)]
    for name in sorted(users):
        for target in sorted(graph[name] & deleted):
            findings.append(_in_use(target, name))
    if not full:
        for resource in existing.values():
            if resource.name in deleted or resource.name in declared:
                continue
            for target in sorted(_state_deps(resource) & deleted):
                findings.append(_in_use(target, resource.name))
    return findings


def _in_use(target: str, user: str) -> Finding:
    return Finding(
        resource=target,
        path="",
        rule="in-use",
        message=f"{target} cannot be deleted: {user} refers to it. Update or delete {user} first (or in the same plan).",
    )


def _order(
    changes: list[Change], graph: Mapping[str, set[str]], existing: Mapping[str, StateResource]
) -> tuple[list[list[str]], list[Change]]:
    """Execution waves: creates/updates/replaces/imports in dependency order, then deletes in reverse.

    Each change's ``depends_on`` lists the changes of this plan it must wait for: execution honours
    exactly these edges (``services/execution`` builds its graph from them, never from properties).
    """
    forward = {c.name for c in changes if c.action in _MAKES}
    removed = {c.name for c in changes if c.action is Action.DELETE}
    forward_graph = {name: graph.get(name, set()) & forward for name in forward}
    # A deleted resource goes after everything that depended on it has gone.
    delete_deps = {name: _state_deps(existing[name]) & removed for name in removed if name in existing}
    dependents: dict[str, set[str]] = {name: set() for name in removed}
    for name, deps in delete_deps.items():
        for d in deps:
            dependents[d].add(name)
    forward_waves, blocked_forward = waves(forward_graph)
    delete_waves, blocked_delete = waves(dependents)
    order = [*forward_waves, *([blocked_forward] if blocked_forward else [])]
    order += [*delete_waves, *([blocked_delete] if blocked_delete else [])]
    updated = []
    for change in changes:
        if change.action in _MAKES:
            waits = sorted(forward_graph.get(change.name, set()))
        else:
            waits = sorted(dependents.get(change.name, set()))
        updated.append(change.model_copy(update={"depends_on": waits}) if waits else change)
    return order, updated


def _summary(changes: Sequence[Change], *, no_op: int) -> PlanSummary:
    counts = dict.fromkeys(Action, 0)
    for change in changes:
        counts[change.action] += 1
    summary = PlanSummary(
        create=counts[Action.CREATE],
        update=counts[Action.UPDATE],
        replace=counts[Action.REPLACE],
        delete=counts[Action.DELETE],
        no_op=no_op,
        import_=counts[Action.IMPORT],
    )
    return summary.model_copy(update={"text": summary_line(summary)})
