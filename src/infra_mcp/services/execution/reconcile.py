"""Reconciliation: finish what an interrupted execution left in flight, from the journal alone.

Every Cloud Control request an execution sends is journaled first and unjournaled only once a
state version holds its result (see ``ledger``). After a crash, kill or cancellation the
journal therefore names every request whose result may be missing from state. For each entry:

- with a request token: ask Cloud Control how it ended (waiting if it still runs) and record it;
- without one (the process died between journaling and learning the token): send the same request
  again with the same ClientToken; Cloud Control answers with the original request if it got it,
  and performs it otherwise (it was approved as part of the plan), so the outcome is known either way.

A create that succeeded is added with the plan's declared properties, a delete that succeeded is
removed, a failed update marks the resource failed. The plan that was ``executing`` ends ``failed``
(or ``executed`` if every change turned out to have succeeded). The caller holds the state lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

import structlog
from pydantic import BaseModel, Field

from infra_mcp.domain.audit import AuditEvent
from infra_mcp.domain.desired import declared_properties
from infra_mcp.domain.execution_graph import Node
from infra_mcp.domain.execution_rules import is_stale
from infra_mcp.domain.plan import (
    Action,
    Change,
    ChangeOutcome,
    ChangeOutcomeStatus,
    ExecutionRecord,
    Plan,
    PlanStatus,
)
from infra_mcp.domain.project import Project
from infra_mcp.domain.state import JournalEntry, ResourceStatus, StateFile
from infra_mcp.domain.type_catalog import TypeCatalog
from infra_mcp.errors import NotFound, PlanStatusInvalid
from infra_mcp.ports import ProjectStore, StateStore
from infra_mcp.services.execution.ledger import RETIRED_MARK, Ledger
from infra_mcp.services.execution.operations import CloudControlCalls, NodeResult, NodeRunner

log = structlog.get_logger(__name__)


class ReconciledRequest(BaseModel):
    plan_id: str
    name: str
    operation: str
    request_token: str | None = None
    outcome: Literal["succeeded", "failed", "unresolved"]
    physical_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


class ReconcileReport(BaseModel):
    """What reconciliation found and recorded for one project."""

    project_id: str
    requests: list[ReconciledRequest] = Field(default_factory=list)
    plans: dict[str, PlanStatus] = Field(default_factory=dict, description="Plans finished by reconciliation.")
    serial_before: int = 0
    serial_after: int = 0
    unresolved: int = Field(default=0, description="Requests still unresolved; their journal entries remain.")


def _node_for(entry: JournalEntry, plan: Plan) -> Node | None:
    change = plan.change(entry.name)
    if change is None:
        return None
    kind = {"CREATE": "create", "UPDATE": "update", "DELETE": "delete"}.get(entry.operation)
    if kind is None:
        return None
    key = f"{entry.name}#{kind}" if change.action is Action.REPLACE else entry.name
    return Node(key, change, kind)  # type: ignore[arg-type]


class Reconciler:
    """Resolves a project's journal into its state and its interrupted plans' outcomes."""

    def __init__(self, projects: ProjectStore, calls: CloudControlCalls, *, clock: Callable[[], datetime]) -> None:
        self.projects = projects
        self.calls = calls
        self.clock = clock

    async def reconcile(
        self, project: Project, store: StateStore, *, user: str, spare_plan: str = ""
    ) -> ReconcileReport:
        """Reconcile ``project``; the caller holds its state lock.

        ``spare_plan`` is not superseded here (an execution about to refuse it as stale says so itself).
        """
        bound = log.bind(project_id=project.id)
        state = await store.read(project.id) or StateFile.empty(project.id)
        report = ReconcileReport(project_id=project.id, serial_before=state.serial, serial_after=state.serial)
        journal = await store.read_journal(project.id)
        plans = await self._plans(project, journal.entries)
        ledger = Ledger(
            store,
            state,
            plan_id=next(iter(plans), None) if len(plans) == 1 else None,
            user=user,
            clock=self.clock,
            interval=float("inf"),
            every=1 << 30,
        )
        await ledger.load_journal()
        initial = {r.name: r for r in state.resources}
        results: dict[str, list[tuple[str, NodeResult]]] = {}
        for entry in journal.entries:
            plan = plans.get(entry.plan_id)
            node = _node_for(entry, plan) if plan is not None else None
            if plan is None or node is None:
                bound.warning("reconcile_entry_without_plan", plan_id=entry.plan_id, name=entry.name)
                report.requests.append(self._reported(entry, None))
                continue
            operations = NodeRunner(plan, self.calls, ledger, initial, self.clock)
            if entry.request_token:
                result = await operations.resume(node, entry)
            else:
                result = await operations.perform(node)
            report.requests.append(self._reported(entry, result))
            if result is not None:
                results.setdefault(plan.id, []).append((entry.name, result))
        description = "Reconciled interrupted execution" + (f" of plan {ledger.plan_id}" if ledger.plan_id else "")
        final = await ledger.flush(description=description, final=True)
        report.serial_after = final.serial
        report.unresolved = sum(1 for r in report.requests if r.outcome == "unresolved")
        for plan in plans.values():
            finished = await self._finish_plan(plan, results.get(plan.id, []), final, user)
            if finished is not None:
                report.plans[plan.id] = finished
        if final.serial != state.serial:
            await supersede_others(self.projects, project.id, final, except_plan=spare_plan)
        await self.projects.append_audit(
            AuditEvent(
                project_id=project.id,
                at=self.clock(),
                actor=user,
                action="state.reconcile",
                target=str(final.serial),
                outcome="ok" if report.unresolved == 0 else "partial",
                details={
                    "requests": len(report.requests),
                    "unresolved": report.unresolved,
                    "plans": {k: v.value for k, v in report.plans.items()},
                },
            )
        )
        bound.info("reconciled", requests=len(report.requests), unresolved=report.unresolved, serial=final.serial)
        return report

    async def _plans(self, project: Project, entries: list[JournalEntry]) -> dict[str, Plan]:
        plans = {p.id: p for p in await self.projects.list_plans(project.id, statuses=[PlanStatus.EXECUTING])}
        for plan_id in {e.plan_id for e in entries} - plans.keys():
            try:
                plans[plan_id] = await self.projects.get_plan(plan_id)
            except NotFound:
                continue
        return plans

    @staticmethod
    def _reported(entry: JournalEntry, result: NodeResult | None) -> ReconciledRequest:
        if result is None:
            outcome: Literal["succeeded", "failed", "unresolved"] = "unresolved"
        else:
            outcome = "succeeded" if result.ok else "failed"
        return ReconciledRequest(
            plan_id=entry.plan_id,
            name=entry.name,
            operation=entry.operation,
            request_token=(result.request_token if result else None) or entry.request_token,
            outcome=outcome,
            physical_id=(result.physical_id if result else None) or entry.physical_id,
            error_code=result.error_code if result else None,
            error_message=result.error_message if result else None,
        )

    async def _finish_plan(
        self, plan: Plan, results: list[tuple[str, NodeResult]], final: StateFile, user: str
    ) -> PlanStatus | None:
        """Fold the reconciled results into the plan's outcomes; end it if it was still executing.

        A plan that ended ``failed`` only because some requests went unanswered (``in_doubt``) ends
        ``executed`` once reconciliation shows every change happened: its result tells the truth.
        """
        execution = plan.execution or ExecutionRecord(started_at=self.clock(), executed_by=user)
        outcomes = {o.name: o for o in execution.outcomes}
        for change in plan.actionable_changes:
            outcomes.setdefault(change.name, ChangeOutcome(name=change.name, action=change.action))
        resolved_doubt = False
        for name, result in results:
            outcome = outcomes[name]
            was_in_doubt = outcome.in_doubt
            if result.physical_id:
                outcome.physical_id = result.physical_id
            outcome.request_token = result.request_token or outcome.request_token
            if not result.ok:
                outcome.status = ChangeOutcomeStatus.FAILED
                outcome.error_code, outcome.error_message = result.error_code, result.error_message
                outcome.in_doubt = result.in_doubt
            elif outcome.status is not ChangeOutcomeStatus.FAILED or was_in_doubt:
                outcome.in_doubt, outcome.error_code, outcome.error_message = False, None, None
                resolved_doubt = resolved_doubt or was_in_doubt
                planned = plan.change(name)
                half_done = (
                    planned is not None
                    and planned.action is Action.REPLACE
                    and not self._applied(plan, outcome, final, execution)
                )
                if half_done:
                    # One half of a replacement (usually the new resource) is done, the other is not:
                    # the change as a whole did not happen. The state keeps both records, so the next
                    # plan proposes what is left.
                    outcome.status = ChangeOutcomeStatus.FAILED
                    outcome.error_code = "Interrupted"
                    outcome.error_message = (
                        "the replacement was interrupted half way: the state records what exists; plan again "
                        "to finish it"
                    )
                else:
                    outcome.status = ChangeOutcomeStatus.SUCCEEDED
            outcome.finished_at = self.clock()
        everything_done = all(o.status is ChangeOutcomeStatus.SUCCEEDED for o in outcomes.values())
        settles = plan.status is PlanStatus.EXECUTING or (
            plan.status is PlanStatus.FAILED and resolved_doubt and everything_done
        )
        if plan.status is PlanStatus.EXECUTING:
            for outcome in outcomes.values():
                if outcome.status is ChangeOutcomeStatus.PENDING:
                    outcome.status = ChangeOutcomeStatus.SKIPPED
                    outcome.error_message = "not started: the execution was interrupted"
                elif outcome.status is ChangeOutcomeStatus.RUNNING and self._applied(plan, outcome, final, execution):
                    # Its journal entry is gone because a state version holds its result (the crash
                    # came before the outcome was saved): the state says it happened.
                    outcome.status = ChangeOutcomeStatus.SUCCEEDED
                    outcome.finished_at = self.clock()
                    log.info("reconcile_outcome_from_state", plan_id=plan.id, name=outcome.name)
                elif outcome.status is ChangeOutcomeStatus.RUNNING:
                    outcome.status = ChangeOutcomeStatus.FAILED
                    outcome.error_code = "Interrupted"
                    outcome.error_message = "the execution was interrupted before this change completed"
        updated = execution.model_copy(
            update={
                "outcomes": list(outcomes.values()),
                "finished_at": execution.finished_at or self.clock(),
                "final_serial": final.serial,
            }
        )
        settled = plan.finish(updated) if settles else plan.with_execution(updated)
        # The outcome and its audit line are one unit of work (a crash never leaves one without the other).
        audit = None
        if settles:
            audit = AuditEvent.about_plan(
                plan,
                actor=user,
                action="plan.execute",
                outcome="ok" if settled.status is PlanStatus.EXECUTED else "failed",
                at=self.clock(),
                reconciled=True,
                final_serial=final.serial,
            )
        try:
            await self.projects.update_plan(settled, expected_status=plan.status, audit=audit)
        except PlanStatusInvalid:
            return None
        return settled.status if settles else None

    def _applied(self, plan: Plan, outcome: ChangeOutcome, final: StateFile, execution: ExecutionRecord) -> bool:
        change = plan.change(outcome.name)
        if change is None:
            return False
        return applied_in_state(change, outcome, final, since=execution.started_at, catalog=self.calls.catalog)


def applied_in_state(
    change: Change, outcome: ChangeOutcome, state: StateFile, *, since: datetime, catalog: TypeCatalog
) -> bool:
    """Whether ``state`` shows ``change`` completed by the execution that started at ``since``.

    Only for a change left ``running`` with no journal entry: its request was either never sent
    (the crash came before it was journaled) or its result reached a state version. Conservative:
    anything short of the exact record the execution writes on success is "not applied".

    - create/update/import/replace: a record under the change's name, of its type, ``active``,
      declaring exactly the plan's properties and tags, written since the execution started;
      with the physical id the outcome recorded (the existing one for update/import, a new one
      for replace, whose old resource must be gone, retired record included).
    - delete: no record of the resource's physical id under its name (retired or not).
    """
    name = change.name
    if change.action is Action.DELETE:
        gone = change.physical_id or outcome.physical_id
        if not gone:
            return False
        return not any(
            r.type == change.type and r.id == gone and (r.name == name or r.name.startswith(name + RETIRED_MARK))
            for r in state.resources
        )
    spec = change.desired
    record = state.resource(name)
    if spec is None or record is None or record.type != change.type or not record.id:
        return False
    if (
        record.status is not ResourceStatus.ACTIVE
        or record.updated_at is None
        or _aware(record.updated_at) < _aware(since)
    ):
        return False
    if record.declared != declared_properties(spec, catalog) or record.tags != dict(spec.tags):
        return False
    if change.action is Action.CREATE:
        return record.id == outcome.physical_id
    if change.action in (Action.UPDATE, Action.IMPORT):
        return record.id == (change.physical_id or outcome.physical_id)
    if change.action is Action.REPLACE:
        retired = any(r.name.startswith(name + RETIRED_MARK) for r in state.resources)
        return record.id == outcome.physical_id and record.id != change.physical_id and not retired
    return False


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def supersede_others(projects: ProjectStore, project_id: str, state: StateFile, *, except_plan: str) -> None:
    """Plans still waiting (pending/approved) against an older state can never run: mark them superseded."""
    waiting = await projects.list_plans(project_id, statuses=[PlanStatus.PENDING, PlanStatus.APPROVED], limit=1000)
    for other in waiting:
        if other.id == except_plan or not is_stale(other, state.serial, state.lineage):
            continue
        with contextlib.suppress(PlanStatusInvalid):
            await projects.update_plan(other.supersede(), expected_status=other.status)
