"""Pure approval rules (DESIGN §4): who may approve or reject what, which rule approves, when an
approval stops counting. What may *run* is in ``execution_rules``; status moves are ``Plan`` methods.

No I/O here: the approval and execution services read the plan, project and state, then ask these
functions. Each ``require_*`` function raises the error an agent should see; each predicate answers
a plain question so the CLI and the server can also show *why* without raising.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from infra_mcp.domain.plan import (
    TERMINAL_STATUSES,
    WHY_FINAL,
    Action,
    Approval,
    ApprovalMethod,
    Plan,
    PlanStatus,
    RiskLevel,
)
from infra_mcp.domain.project import AutoApprovalRule, Permission, Project
from infra_mcp.domain.risk import destroys_data
from infra_mcp.errors import (
    ApprovalExpired,
    ApprovalRequired,
    PlanStatusInvalid,
)

RULE_APPROVER = "rule:auto-approval"


def rule_mismatches(plan: Plan, rule: AutoApprovalRule) -> list[str]:
    """Why ``plan`` does not fit ``rule``; an empty list means it does.

    A cost that could not be estimated counts against the rule: a limit on cost delta means
    nothing if part of the cost is unknown, so such plans go to a human.
    """
    reasons: list[str] = []
    if plan.risk.rank > RiskLevel(rule.max_risk.value).rank:
        reasons.append(f"risk {plan.risk.value} is above {rule.max_risk.value}")
    if plan.cost.monthly_delta > rule.max_cost_delta_usd:
        reasons.append(
            f"monthly cost delta {plan.cost.monthly_delta:.2f} {plan.cost.currency} is above "
            f"{rule.max_cost_delta_usd:.2f}"
        )
    if plan.cost.unpriced:
        names = ", ".join(sorted({u.name for u in plan.cost.unpriced}))
        reasons.append(f"cost could not be estimated for {names}")
    allowed = set(rule.actions) | {Action.NOOP.value}
    extra = sorted({c.action.value for c in plan.changes} - allowed)
    if extra:
        reasons.append(f"action(s) {', '.join(extra)} not allowed by the rule (allowed: {sorted(rule.actions)})")
    if any(f.severity == "error" for f in plan.findings):
        reasons.append("the plan has validation errors")
    # Whatever the rule's limits say: a person decides on these.
    security = [finding for c in plan.changes for finding in c.security_findings]
    if security:
        more = f" and {len(security) - 3} more" if len(security) > 3 else ""
        reasons.append(f"security-relevant change(s): {'; '.join(security[:3])}{more}")
    destroyed = sorted(c.name for c in plan.changes if destroys_data(c))
    if destroyed:
        reasons.append(f"destroys or replaces data-holding resource(s): {', '.join(destroyed)}")
    return reasons


def fits_rule(plan: Plan, rule: AutoApprovalRule) -> bool:
    """True if ``plan`` may be approved by ``rule`` without a human."""
    return not rule_mismatches(plan, rule)


def is_expired(approval: Approval, now: datetime) -> bool:
    """An approval counts until its ``expires_at``; strictly after it, it is expired."""
    return now > approval.expires_at


def require_permission(project: Project, user: str, permission: Permission) -> None:
    """Raises AccessDenied (AUTH_001) unless ``user``'s role grants ``permission``."""
    project.require(user, permission)


def require_pending(plan: Plan, *, action: str) -> None:
    """Raises PlanStatusInvalid (PLAN_003) unless ``plan`` still awaits a decision."""
    if plan.status is PlanStatus.PENDING:
        return
    if plan.status in TERMINAL_STATUSES:
        hint = "Make a new plan with plan_changes."
        why = WHY_FINAL[plan.status]
    elif plan.status is PlanStatus.APPROVED:
        why, hint = "is already approved", "Execute it with execute_plan, or reject it with reject_plan."
    else:
        why, hint = f"is {plan.status.value}", "Wait for the execution to finish."
    raise PlanStatusInvalid(
        f"Cannot {action} plan {plan.id}: it {why}. {hint}",
        details={"plan_id": plan.id, "status": plan.status.value},
    )


def require_has_changes(plan: Plan, *, action: str) -> None:
    """Raises PlanStatusInvalid (PLAN_003) for a "No changes" plan: nothing to approve or execute."""
    if not plan.has_changes:
        raise PlanStatusInvalid(
            f"Plan {plan.id} has no changes: there is nothing to {action}. AWS already matches it. Nothing to do; "
            "make a new plan when you want something changed.",
            details={"plan_id": plan.id, "status": plan.status.value, "reason": "no_changes"},
        )


def require_may_approve(plan: Plan, project: Project, user: str) -> None:
    """Everything about *who* and *which status* before a human is asked.

    Raises:
        AccessDenied: AUTH_001, the user's role lacks ``approve``.
        PlanStatusInvalid: PLAN_003, the plan is not pending, or has no changes.
        ApprovalRequired: APPROVAL_002, the author may not approve their own plan in this project.
    """
    require_permission(project, user, Permission.APPROVE)
    require_pending(plan, action="approve")
    require_has_changes(plan, action="approve")
    if not project.settings.approval.allow_self_approval and user == plan.author:
        raise ApprovalRequired(
            f"Project {project.id!r} does not allow a plan's author to approve it; {user!r} made plan {plan.id}. "
            "Ask another member with the approver or owner role to approve it.",
            details={"plan_id": plan.id, "author": plan.author, "user": user, "reason": "self_approval_forbidden"},
        )


def require_may_reject(plan: Plan, project: Project, user: str) -> None:
    """Approvers reject; an author may also withdraw their own plan.

    Raises:
        AccessDenied: AUTH_001.
        PlanStatusInvalid: PLAN_003 unless the plan is pending or approved.
    """
    if user != plan.author or not project.can(user, Permission.PLAN):
        require_permission(project, user, Permission.APPROVE)
    if plan.status not in (PlanStatus.PENDING, PlanStatus.APPROVED):
        require_pending(plan, action="reject")


def require_grounds_hold(plan: Plan, project: Project, now: datetime) -> None:
    """The approval still stands under the project's *current* members and policy.

    An approval is a decision by someone allowed to make it, under the rules in force. If the
    approver lost the role, the policy was tightened (self-approval off, human confirmation on,
    a shorter time to live, the rule removed), it no longer counts.

    Raises:
        ApprovalRequired: APPROVAL_002, the approver or the policy no longer allows it.
        ApprovalExpired: APPROVAL_001, the current time to live has run out.
    """
    approval = plan.approval
    if approval is None:
        return
    policy = project.settings.approval

    def refuse(reason: str, why: str) -> ApprovalRequired:
        return ApprovalRequired(
            f"The approval of plan {plan.id} no longer counts: {why}. Ask an approver of project "
            f"{project.id!r} to approve a new plan.",
            details={"plan_id": plan.id, "approved_by": approval.approved_by, "reason": reason},
        )

    if approval.method is ApprovalMethod.RULE:
        rule = policy.auto_approval
        if rule is None:
            raise refuse("rule_removed", "the project's auto-approval rule was removed")
        mismatches = rule_mismatches(plan, rule)
        if mismatches:
            raise refuse("rule_no_longer_fits", f"the plan no longer fits the current rule ({mismatches[0]})")
    else:
        if not project.can(approval.approved_by, Permission.APPROVE):
            raise refuse("approver_lost_role", f"{approval.approved_by!r} may no longer approve in this project")
        if approval.method is ApprovalMethod.NO_CONFIRMATION and policy.require_human_confirmation:
            raise refuse("confirmation_now_required", "the project now requires a human to confirm every plan")
        if not policy.allow_self_approval and approval.approved_by == plan.author:
            raise refuse("self_approval_forbidden", "the project no longer lets a plan's author approve it")
    deadline = min(approval.expires_at, approval.approved_at + timedelta(minutes=policy.approval_ttl_minutes))
    if now > deadline:
        raise ApprovalExpired(
            f"The approval of plan {plan.id} expired at {deadline.isoformat()} under the project's current "
            "approval time to live. Make a new plan and approve it again.",
            details={"plan_id": plan.id, "expired_at": deadline.isoformat(), "reason": "ttl_shortened"},
        )
