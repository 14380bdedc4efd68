"""Tool output views for plans, approval and execution (plans reach them redacted, see ``domain.redaction``).

A plan tool answers with a small view: what the plan does in one line per change, and the URIs of
the full plan and its diff. The whole ``Plan`` model is about 10 KB of schema; repeated in eight
tools' output schemas it filled an agent's context on every turn, so it stays in resources.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from infra_mcp.domain.plan import (
    Action,
    Change,
    ChangeOutcome,
    ChangeOutcomeStatus,
    Plan,
    PlanStatus,
    RiskLevel,
)

# A change line's reasons are for reading at a glance; the plan resource has them all.
_WHY_MAX = 3
_WHY_CHARS = 200

# What happened to a change that ran, in the past tense ("created"), not the plan's "will be created".
_DONE = {
    Action.CREATE: "created",
    Action.UPDATE: "updated",
    Action.REPLACE: "replaced",
    Action.DELETE: "deleted",
    Action.IMPORT: "imported",
    Action.NOOP: "unchanged",
}


def plan_uri(plan: Plan) -> str:
    return f"infra://projects/{plan.project_id}/plans/{plan.id}"


def next_step(plan: Plan) -> str:
    """One sentence telling the agent what to do with the plan now."""
    if plan.status is PlanStatus.PENDING:
        if not plan.actionable_changes:
            return "Nothing to change: AWS already matches the desired state. No approval needed."
        if plan.approval_request is not None:
            return (
                "Waiting for a person to approve it in their terminal. Do not run the approval command yourself; "
                "call execute_plan once the person says it is approved."
            )
        return (
            "Tell the user the summary, risk and changes (full diff at diff_uri), then call approve_plan "
            "(a person confirms it) or reject_plan. Nothing has touched AWS."
        )
    if plan.status is PlanStatus.APPROVED:
        return "Approved. Call execute_plan to apply it before the approval expires."
    if plan.status is PlanStatus.EXECUTED:
        return "Executed. See list_resources and get_state_history."
    if plan.status is PlanStatus.FAILED:
        return "Execution failed for some changes (see each change's result): explain them, then plan a follow-up."
    return f"This plan is {plan.status.value}; it can no longer be approved or executed. Make a new plan."


class PlanResult(BaseModel):
    # No docstring and plain strings for status and risk: each would be repeated in six tools' output
    # schemas. (A plan at a glance; plan_uri and diff_uri are resources with every detail.)
    plan_id: str
    status: str
    summary: str
    risk: str
    monthly_cost_delta: float = Field(description="USD")
    changes: list[str]  # one line per change
    warnings: list[str]
    plan_uri: str
    diff_uri: str
    next_step: str


def _cut(text: str) -> str:
    return text if len(text) <= _WHY_CHARS else text[: _WHY_CHARS - 1] + "…"


def _why(change: Change) -> list[str]:
    reasons = [*change.security_findings]
    reasons += [f"{p} forces replacement" for p in change.replacement_reasons]
    # A low-risk change's reason only restates the line ("creating net (AWS::EC2::VPC)").
    reasons += change.risk_reasons if change.risk is not RiskLevel.LOW else []
    return list(dict.fromkeys(_cut(r) for r in reasons))[:_WHY_MAX]


def change_line(change: Change, outcome: ChangeOutcome | None = None) -> str:
    """One change in one line: ``create web-vpc (AWS::EC2::VPC) [low]: why`` or, once run, what happened.

    Once executed the verb is in the past tense (``created``) and the physical id follows, so the
    agent reports what happened, not what the plan said would happen.
    """
    what = f"{change.name} ({change.type})"
    # Accepted drift changes the record only: said so, so nobody reads it as a change sent to AWS.
    verb = f"accept drift ({change.action.value} record)" if change.record_only else change.action.value
    if outcome is None or outcome.status in (ChangeOutcomeStatus.PENDING, ChangeOutcomeStatus.RUNNING):
        why = _why(change)
        return f"{verb} {what} [{change.risk.value}]" + (f": {'; '.join(why)}" if why else "")
    if outcome.status is ChangeOutcomeStatus.SUCCEEDED:
        if change.record_only:
            return f"recorded {what} as it is live" if change.action is Action.UPDATE else f"dropped {what} from state"
        physical_id = outcome.physical_id or change.physical_id
        return f"{_DONE[change.action]} {what}" + (f" -> {physical_id}" if physical_id else "")
    if outcome.status is ChangeOutcomeStatus.SKIPPED:
        return f"skipped {change.action.value} {what}: something it depends on failed"
    error = ": ".join(part for part in (outcome.error_code, outcome.error_message) if part)
    return _cut(f"failed to {change.action.value} {what}" + (f": {error}" if error else ""))


def plan_result(plan: Plan) -> PlanResult:
    """The view of a plan the plan tools return (``plan`` already redacted)."""
    outcomes = {o.name: o for o in plan.execution.outcomes} if plan.execution else {}
    uri = plan_uri(plan)
    return PlanResult(
        plan_id=plan.id,
        status=plan.status.value,
        summary=plan.summary.text,
        risk=plan.risk.value,
        monthly_cost_delta=plan.cost.monthly_delta,
        changes=[change_line(c, outcomes.get(c.name)) for c in plan.actionable_changes],
        warnings=[
            _cut(f"{f.resource or 'plan'}{' at ' + f.path if f.path else ''}: {f.message}") for f in plan.findings
        ],
        plan_uri=uri,
        diff_uri=f"{uri}/diff",
        next_step=next_step(plan),
    )


class PlanSummaryView(BaseModel):
    plan_id: str
    status: str
    summary: str
    risk: str
    author: str
    created_at: datetime
    description: str


class PlanList(BaseModel):
    project_id: str
    plans: list[PlanSummaryView] = Field(description="Newest first.")


class ApprovalResult(BaseModel):
    plan_id: str
    outcome: Literal["approved", "declined", "cancelled", "rejected"]
    status: str
    approved_by: str = ""
    method: str = ""
    expires_at: datetime | None = None
    next_step: str


def summary_view(plan: Plan) -> PlanSummaryView:
    return PlanSummaryView(
        plan_id=plan.id,
        status=plan.status.value,
        summary=plan.summary.text,
        risk=plan.risk.value,
        author=plan.author,
        created_at=plan.created_at,
        description=plan.description,
    )


class PendingPlan(BaseModel):
    """One plan waiting for a person (the infra://plans/pending resource)."""

    plan_id: str
    project_id: str
    summary: str
    risk: str
    author: str
    created_at: datetime
    you_may_approve: bool
    plan_uri: str


class PendingPlans(BaseModel):
    user: str
    plans: list[PendingPlan]


def pending_view(plan: Plan, may_approve: bool) -> PendingPlan:
    return PendingPlan(
        plan_id=plan.id,
        project_id=plan.project_id,
        summary=plan.summary.text,
        risk=plan.risk.value,
        author=plan.author,
        created_at=plan.created_at,
        you_may_approve=may_approve,
        plan_uri=f"infra://projects/{plan.project_id}/plans/{plan.id}",
    )
