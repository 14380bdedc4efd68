"""Tool output models for plans, approval and execution (and how plans are shown safely)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from infra_mcp.domain.plan import SENSITIVE, Plan, PlanStatus, RiskLevel
from infra_mcp.domain.sealed import is_sealed, is_secret_digest
from infra_mcp.domain.state import StateFile, StateResource


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        if is_sealed(value) or is_secret_digest(value):
            return SENSITIVE
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def redacted_resource(resource: StateResource) -> StateResource:
    """A state resource as shown to agents: secret digests in ``declared`` become a marker.

    The digest lets the planner notice a changed secret; shown to an agent it would only help
    someone guess a weak password offline.
    """
    return resource.model_copy(update={"declared": _redact(resource.declared)})


def redacted_state(state: StateFile) -> StateFile:
    return state.model_copy(update={"resources": [redacted_resource(r) for r in state.resources]})


def redacted(plan: Plan) -> Plan:
    """The plan as an agent or a person may see it: sealed secrets (and their digests) become a marker."""
    changes = []
    for change in plan.changes:
        if change.desired is not None:
            desired = change.desired.model_copy(update={"properties": _redact(change.desired.properties)})
            change = change.model_copy(update={"desired": desired})
        changes.append(change)
    return plan.model_copy(update={"changes": changes})


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
            "Show the diff to the user, then call approve_plan (a human confirms it) or reject_plan. "
            "Nothing has touched AWS."
        )
    if plan.status is PlanStatus.APPROVED:
        return "Approved. Call execute_plan to apply it before the approval expires."
    if plan.status is PlanStatus.EXECUTED:
        return "Executed. See list_resources and get_state_history."
    if plan.status is PlanStatus.FAILED:
        return "Execution failed for some changes: read execution.outcomes, explain them, then plan a follow-up."
    return f"This plan is {plan.status.value}; it can no longer be approved or executed. Make a new plan."


class PlanView(BaseModel):
    plan: Plan
    diff: str = Field(description="The plan as a person reads it (terraform-plan style).")
    next_step: str


class PlanSummaryView(BaseModel):
    id: str
    status: PlanStatus
    kind: str
    description: str
    author: str
    created_at: datetime
    summary: str
    risk: RiskLevel
    monthly_cost_delta: float
    approved_by: str | None = None
    approval_method: str | None = None


class PlanList(BaseModel):
    project_id: str
    plans: list[PlanSummaryView]


class ApprovalResult(BaseModel):
    plan_id: str
    outcome: Literal["approved", "declined", "cancelled"]
    status: PlanStatus
    approved_by: str | None = None
    method: str | None = None
    expires_at: datetime | None = None
    next_step: str


def summary_view(plan: Plan) -> PlanSummaryView:
    return PlanSummaryView(
        id=plan.id,
        status=plan.status,
        kind=plan.kind,
        description=plan.description,
        author=plan.author,
        created_at=plan.created_at,
        summary=plan.summary.text,
        risk=plan.risk,
        monthly_cost_delta=plan.cost.monthly_delta,
        approved_by=plan.approval.approved_by if plan.approval else None,
        approval_method=plan.approval.method.value if plan.approval else None,
    )
