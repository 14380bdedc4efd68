"""Pure execution rules (DESIGN §4): whether an approved plan may run now, and against which state.

No I/O here: the execution service reads the plan and the state, then asks these functions.
"""

from __future__ import annotations

from datetime import datetime

from infra_mcp.domain.approval_rules import is_expired
from infra_mcp.domain.plan import TERMINAL_STATUSES, WHY_FINAL, Approval, Plan, PlanStatus
from infra_mcp.errors import ApprovalExpired, ApprovalRequired, PlanStale, PlanStatusInvalid, PlanTampered


def is_stale(plan: Plan, serial: int, lineage: str | None) -> bool:
    """True if the state moved since ``plan`` was made.

    A state never written (serial 0) has no lineage yet, so only the serial is compared then.
    """
    if plan.base_serial != serial:
        return True
    return serial > 0 and plan.base_lineage != lineage


def require_fresh(plan: Plan, serial: int, lineage: str | None) -> None:
    """Raises PlanStale (PLAN_001) if the state moved since the plan was made."""
    if is_stale(plan, serial, lineage):
        raise PlanStale(
            f"Plan {plan.id} was made against state serial {plan.base_serial}, but the state is now at serial "
            f"{serial}. Plan again with plan_changes.",
            details={
                "plan_id": plan.id,
                "plan_serial": plan.base_serial,
                "state_serial": serial,
                "lineage_changed": serial > 0 and plan.base_lineage != lineage,
            },
        )


def require_executable(plan: Plan, now: datetime, *, fingerprint: str | None = None) -> Approval:
    """The approval to execute under, if ``plan`` may run now (state freshness is checked apart).

    Raises:
        ApprovalRequired: APPROVAL_002, the plan is pending: approve it first.
        PlanStatusInvalid: PLAN_003, the plan is rejected, expired, executed, failed, superseded or running.
        ApprovalExpired: APPROVAL_001, the approval's time ran out.
        PlanTampered: PLAN_002, the plan changed after approval.

    ``fingerprint`` is the plan's fingerprint if the caller just computed it (it is costly).
    """
    if plan.status is PlanStatus.PENDING:
        request = plan.approval_request
        if request is not None:
            raise ApprovalRequired(
                f"Plan {plan.id} is waiting for a person to approve it in a terminal. Do not call approve_plan "
                f"again. The person runs, in their own terminal: {request.command} ; when they say it is approved, "
                "call execute_plan.",
                details={
                    "plan_id": plan.id,
                    "status": plan.status.value,
                    "reason": "awaiting_out_of_band_approval",
                    "for_the_person": request.command,
                },
            )
        raise ApprovalRequired(
            f"Plan {plan.id} is not approved. Approve it first with approve_plan, then execute it.",
            details={"plan_id": plan.id, "status": plan.status.value, "reason": "not_approved"},
        )
    if plan.status is not PlanStatus.APPROVED:
        if plan.status in TERMINAL_STATUSES:
            message = f"Plan {plan.id} {WHY_FINAL[plan.status]} and can never be executed again. Make a new plan."
        else:
            message = (
                f"Plan {plan.id} is {plan.status.value}: it is already being executed. Wait for it to finish; "
                "get_plan shows its status."
            )
        raise PlanStatusInvalid(message, details={"plan_id": plan.id, "status": plan.status.value})
    approval = plan.approval
    if approval is None:
        # An 'approved' row without an approval can only come from outside infra-mcp.
        raise PlanTampered(
            f"Plan {plan.id} is marked approved but carries no approval record. Make a new plan.",
            details={"plan_id": plan.id, "reason": "approval_missing"},
        )
    if is_expired(approval, now):
        raise ApprovalExpired(
            f"The approval of plan {plan.id} expired at {approval.expires_at.isoformat()}. "
            "Make a new plan and approve it again.",
            details={"plan_id": plan.id, "expired_at": approval.expires_at.isoformat()},
        )
    actual = fingerprint if fingerprint is not None else plan.compute_fingerprint()
    if actual != approval.fingerprint or plan.fingerprint != approval.fingerprint:
        raise PlanTampered(
            f"Plan {plan.id} changed after it was approved: its content no longer matches the approved "
            "fingerprint. It will not run. Make a new plan and have it approved.",
            details={"plan_id": plan.id, "reason": "changed_after_approval"},
        )
    return approval
