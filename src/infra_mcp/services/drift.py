"""Drift use cases: read what is live, compare it with what was declared, and the two ways out.

- :meth:`DriftService.detect` reads every resource (or the named ones) with ``GetResource``, at
  most ``parallelism`` at a time, reports progress, and keeps the result as the project's last one.
- :meth:`DriftService.refresh` is what ``plan_changes(refresh=true)`` plans against: the state with
  each drifted value replaced by the live one, and resources deleted out of band left out (so the
  plan re-creates them).
- :meth:`DriftService.accept` makes a plan whose execution records the live values as declared
  and sends nothing to AWS.

Discovery and import are in :mod:`infra_mcp.services.imports`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio
import structlog

from infra_mcp.catalog.registry import Catalog
from infra_mcp.domain.audit import AuditEvent
from infra_mcp.domain.common import utcnow, validate_project_id
from infra_mcp.domain.drift import (
    DriftReport,
    DriftStatus,
    ResourceDrift,
    compare,
    live_values_of,
    with_live_values,
)
from infra_mcp.domain.payload import UnresolvedReference, resolve
from infra_mcp.domain.plan import (
    SENSITIVE,
    Action,
    Change,
    Plan,
    PlanStatus,
    PlanSummary,
    PropertyChange,
    ResourceSpec,
)
from infra_mcp.domain.project import Permission, Project
from infra_mcp.domain.refs import escape
from infra_mcp.domain.risk import plan_risk, with_risk
from infra_mcp.domain.sealed import is_secret_digest
from infra_mcp.domain.state import StateFile, StateResource
from infra_mcp.domain.typefacts import type_facts
from infra_mcp.errors import InfraError, NotFound, UpstreamUnavailable, ValidationFailed
from infra_mcp.ports import DriftReports, ProgressReporter, ProjectStore, StateStores, Upstream
from infra_mcp.services.planning import PlanningService, new_plan_id

log = structlog.get_logger(__name__)

NAMES_MAX = 1000


@dataclass
class Refreshed:
    """The state a refreshed plan diffs against, and what the plan must know about it."""

    state: StateFile | None
    live_values: dict[str, dict[str, Any]] = field(default_factory=dict)
    gone: dict[str, str] = field(default_factory=dict)  # name -> the id it had

    def annotate(self, plan: Plan) -> Plan:
        """``plan`` with each update's live values and each re-creation's old id (fingerprint renewed)."""
        changes = []
        for change in plan.changes:
            if change.action is Action.CREATE and change.name in self.gone:
                change = change.model_copy(
                    update={
                        "physical_id": self.gone[change.name],
                        "risk_reasons": [
                            f"{change.name} was deleted outside infra-mcp: it is re-created with a new id",
                            *change.risk_reasons,
                        ],
                    }
                )
            elif change.action is Action.UPDATE and change.name in self.live_values:
                change = change.model_copy(update={"live_values": self.live_values[change.name]})
            changes.append(change)
        risk, reasons = plan_risk(changes)
        return plan.model_copy(update={"changes": changes, "risk": risk, "risk_reasons": reasons}).with_fingerprint()


class DriftService:
    """Drift detection and its two ways out, revert (a refreshed plan) and accept.

    Args:
        projects: Projects, plans and the audit log.
        reports: Where each project's last drift result is kept.
        states: The state store of each project.
        upstream: Cloud Control (``GetResource``).
        catalog: Resource type knowledge (read-only, write-only and unordered paths).
        planning: Stores the plans made here, signed and audited like every plan.
        parallelism: Most ``GetResource`` calls in flight at once.
        clock: Current time (the result's timestamp).
    """

    def __init__(
        self,
        projects: ProjectStore,
        reports: DriftReports,
        states: StateStores,
        upstream: Upstream,
        catalog: Catalog,
        planning: PlanningService,
        *,
        parallelism: int = 10,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.projects = projects
        self.reports = reports
        self.states = states
        self.upstream = upstream
        self.catalog = catalog
        self.planning = planning
        self.parallelism = max(1, parallelism)
        self.clock = clock

    async def _project(self, project_id: str, user: str, permission: Permission) -> Project:
        validate_project_id(project_id)
        project = await self.projects.get_project(project_id)
        project.require(user, permission)
        return project

    async def _state(self, project: Project) -> StateFile:
        return await self.states.for_project(project).read(project.id) or StateFile.empty(project.id)

    # ---- detect ---------------------------------------------------------------------------------

    async def detect(
        self,
        project_id: str,
        user: str,
        names: Sequence[str] | None = None,
        progress: ProgressReporter | None = None,
    ) -> DriftReport:
        """Compare each resource (or the named ones) with what is live; keep the result as the last one.

        Raises:
            NotFound: RESOURCE_001, no such project (or not a member), or a name not in its state.
        """
        project = await self._project(project_id, user, Permission.READ)
        state = await self._state(project)
        chosen = _chosen(state, names, project_id)
        found = await self.read_live(state, chosen, progress)
        report = DriftReport(
            project_id=project.id, checked_at=self.clock(), checked_by=user, serial=state.serial, resources=found
        )
        await self.reports.save_drift_report(report)
        counts = {s.value: report.count(s) for s in DriftStatus if report.count(s)}
        await self.projects.append_audit(
            AuditEvent(
                project_id=project.id,
                at=report.checked_at,
                actor=user,
                action="drift.detect",
                target=project.id,
                details={"serial": state.serial, "checked": len(found), **counts},
            )
        )
        log.info("drift_detected", project_id=project.id, checked=len(found), **counts)
        return report

    async def last(self, project_id: str, user: str) -> DriftReport | None:
        """The project's last drift result, if ``user`` may read the project."""
        await self._project(project_id, user, Permission.READ)
        return await self.reports.get_drift_report(project_id)

    async def read_live(
        self, state: StateFile, chosen: Sequence[StateResource], progress: ProgressReporter | None = None
    ) -> list[ResourceDrift]:
        """Each chosen resource compared with its live self, ``parallelism`` reads at a time, in order."""
        by_name = {r.name: r for r in state.resources}
        results: list[ResourceDrift | None] = [None] * len(chosen)
        total = len(chosen)
        queue = iter(enumerate(chosen))
        done = 0
        told = anyio.Lock()

        async def worker() -> None:
            # A fixed pool of readers, each taking the next resource as soon as it is free: never more
            # than ``parallelism`` reads in flight, and no task per resource waiting its turn.
            nonlocal done
            for index, resource in queue:
                results[index] = await self._drift_of(resource, by_name)
                if progress is None:
                    continue
                async with told:  # notifications leave in order, each above the one before
                    done += 1
                    await progress(done, total, f"Read {done} of {total}: {resource.name}")

        if progress is not None:
            await progress(0, total, f"Reading {total} resource(s) from AWS")
        async with anyio.create_task_group() as group:
            for _ in range(min(self.parallelism, total)):
                group.start_soon(worker)
        return [r for r in results if r is not None]

    async def _drift_of(self, resource: StateResource, by_name: Mapping[str, StateResource]) -> ResourceDrift:
        base = ResourceDrift(
            name=resource.name,
            type=resource.type,
            id=resource.id or "",
            region=resource.region,
            status=DriftStatus.UNKNOWN,
        )
        if not resource.id:
            return base.model_copy(update={"error": "no physical id recorded: it was never created"})
        try:
            facts = type_facts(self.catalog, resource.type, resource.region)
            live = await self.upstream.get_resource(resource.type, resource.id, region=resource.region)
        except NotFound:
            return base.model_copy(update={"status": DriftStatus.DELETED})
        except InfraError as exc:
            return base.model_copy(update={"error": f"{exc.code}: {exc.message}"[:500]})
        declared: dict[str, Any] = {}
        unresolved: list[str] = []
        type_info = self.catalog.get
        for key, value in resource.declared.items():
            try:
                declared[key] = resolve(value, by_name, region=resource.region, type_info=type_info)
            except UnresolvedReference:
                unresolved.append("/" + escape(key))
        differences, skipped = compare(declared, live.properties, facts, tags=resource.tags)
        return base.model_copy(
            update={
                "status": DriftStatus.MODIFIED if differences else DriftStatus.IN_SYNC,
                "differences": differences,
                "not_compared": sorted([*skipped, *unresolved]),
            }
        )

    # ---- revert: plan against the live values -------------------------------------------------

    async def refresh(self, project: Project, current: StateFile | None, desired: set[str]) -> Refreshed:
        """The current state as it is live, for a plan that restores what ``desired`` declares.

        Drifted values replace the declared ones (so the diff shows, and execution patches, live ->
        declared). A resource gone live that is still desired is left out (so it is planned as a
        create); one no longer desired stays, so the plan deletes it (AWS's NotFound then only
        drops the record).

        Raises:
            UpstreamUnavailable: AWS_MCP_001 if a resource could not be read (nothing is planned).
        """
        if current is None or not current.resources:
            return Refreshed(current)
        found = await self.read_live(current, list(current.resources))
        _require_read(found)
        drift = {d.name: d for d in found}
        resources: list[StateResource] = []
        refreshed = Refreshed(None)
        for resource in current.resources:
            seen = drift[resource.name]
            if seen.status is DriftStatus.DELETED and resource.name in desired and resource.id:
                refreshed.gone[resource.name] = resource.id
                continue
            if seen.status is DriftStatus.MODIFIED:
                values = live_values_of(seen)
                declared, tags = with_live_values(resource.declared, resource.tags, values)
                refreshed.live_values[resource.name] = values
                resource = resource.model_copy(update={"declared": declared, "tags": tags})
            resources.append(resource)
        refreshed.state = current.model_copy(update={"resources": resources})
        return refreshed

    # ---- accept: record the live values as declared --------------------------------------------

    async def accept(self, project_id: str, user: str, names: Sequence[str], description: str = "") -> Plan:
        """A plan whose execution records the named resources' live values as declared (nothing sent to AWS).

        Resources modified live get their drifted values as declared; resources deleted live are
        dropped from state; resources in sync are no-ops.

        Raises:
            NotFound: RESOURCE_001, a name not in the project's state.
            AccessDenied: AUTH_001 without the plan permission.
            UpstreamUnavailable: AWS_MCP_001 if a resource could not be read (nothing is planned).
        """
        project = await self._project(project_id, user, Permission.PLAN)
        if not names:
            raise ValidationFailed(
                "names is empty. Pass the resources whose drift to accept (detect_drift lists them).",
                details={"field": "names"},
            )
        state = await self._state(project)
        chosen = _chosen(state, names, project_id)
        found = await self.read_live(state, chosen)
        _require_read(found)
        records = {r.name: r for r in chosen}
        changes = [
            _accepting(records[d.name], d) for d in found if d.status in (DriftStatus.MODIFIED, DriftStatus.DELETED)
        ]
        modified = sum(1 for c in changes if c.action is Action.UPDATE)
        deleted = len(changes) - modified
        risk, reasons = plan_risk(changes)
        text = (
            f"Accept drift: {modified} to record as live, {deleted} to drop from state (deleted outside infra-mcp); "
            "nothing is sent to AWS."
            if changes
            else "No changes. The resources match what was declared."
        )
        plan = Plan(
            id=new_plan_id(),
            project_id=project.id,
            description=description or f"Accept drift of {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}",
            author=user,
            kind="partial",
            status=PlanStatus.PENDING,
            base_serial=state.serial,
            base_lineage=state.lineage if state.serial else None,
            changes=changes,
            execution_order=[[c.name for c in changes]] if changes else [],
            summary=PlanSummary(update=modified, delete=deleted, no_op=len(found) - len(changes), text=text),
            risk=risk,
            risk_reasons=reasons,
        ).with_fingerprint()
        return await self.planning.record(project, plan, user=user)


def _chosen(state: StateFile, names: Sequence[str] | None, project_id: str) -> list[StateResource]:
    if names is None:
        return list(state.resources)
    if len(names) > NAMES_MAX:
        raise ValidationFailed(
            f"At most {NAMES_MAX} names at once; leave names out to check every resource.",
            details={"field": "names", "count": len(names)},
        )
    by_name = {r.name: r for r in state.resources}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise NotFound(
            f"No resource {missing[0][:80]!r} in project {project_id!r}; use list_resources to see what it has.",
            details={"project_id": project_id, "missing": [m[:80] for m in missing[:20]]},
        )
    return [by_name[n] for n in dict.fromkeys(names)]


def _require_read(found: Sequence[ResourceDrift]) -> None:
    unread = [d for d in found if d.status is DriftStatus.UNKNOWN]
    if unread:
        first = unread[0]
        raise UpstreamUnavailable(
            f"Could not read {len(unread)} resource(s) live, e.g. {first.name}: {first.error} Nothing was planned. "
            "Check get_server_status, then try again.",
            details={"unread": [d.name for d in unread[:50]]},
        )


def _accepting(resource: StateResource, drift: ResourceDrift) -> Change:
    """The record-only change that makes ``resource``'s record say what ``drift`` found live."""
    if drift.status is DriftStatus.DELETED:
        change = Change(
            name=resource.name,
            type=resource.type,
            action=Action.DELETE,
            region=resource.region,
            physical_id=resource.id,
            record_only=True,
            property_changes=[
                PropertyChange(path="/" + key, before=SENSITIVE if is_secret_digest(value) else value, after=None)
                for key, value in resource.declared.items()
            ],
        )
        return change.model_copy(
            update={
                "risk_reasons": [f"{resource.name} is already gone from AWS: only its record is removed"],
            }
        )
    values = live_values_of(drift)
    properties, tags = with_live_values(resource.declared, resource.tags, values)
    change = Change(
        name=resource.name,
        type=resource.type,
        action=Action.UPDATE,
        region=resource.region,
        physical_id=resource.id,
        record_only=True,
        live_values=values,
        property_changes=[PropertyChange(path=d.path, before=d.expected, after=d.actual) for d in drift.differences],
        desired=ResourceSpec(
            name=resource.name,
            type=resource.type,
            region=resource.region,
            properties=properties,
            tags=tags,
            depends_on=list(resource.depends_on),
            deletion_policy=resource.deletion_policy,
        ),
    )
    rated = with_risk(change)
    why = f"accepting {resource.name}'s drift records its live values as declared; nothing is sent to AWS"
    return rated.model_copy(update={"risk_reasons": [why, *rated.risk_reasons]})


__all__ = ["DriftService", "Refreshed"]
