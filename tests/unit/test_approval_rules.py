"""Pure approval rules: rule fit, expiry, who may approve, which statuses are final."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from infra_mcp.domain import approval_rules as rules
from infra_mcp.domain import execution_rules
from infra_mcp.domain.plan import (
    TERMINAL_STATUSES,
    Action,
    Approval,
    ApprovalMethod,
    Change,
    CostEstimate,
    Finding,
    Plan,
    PlanStatus,
    RiskLevel,
    Unpriced,
)
from infra_mcp.domain.project import (
    ApprovalSettings,
    AutoApprovalRule,
    Member,
    Project,
    ProjectSettings,
    RiskCeiling,
    Role,
)
from infra_mcp.errors import InfraError

NOW = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)


def project(*, allow_self: bool = True) -> Project:
    return Project(
        id="web",
        name="web",
        owner="olivia",
        members=[
            Member(user="olivia", role=Role.OWNER),
            Member(user="alice", role=Role.APPROVER),
            Member(user="ed", role=Role.EDITOR),
            Member(user="vic", role=Role.VIEWER),
        ],
        settings=ProjectSettings(approval=ApprovalSettings(allow_self_approval=allow_self)),
    )


def plan(*actions: Action, risk: RiskLevel = RiskLevel.LOW, delta: float = 0.0, **update: object) -> Plan:
    changes = [Change(name=f"r{i}", type="AWS::EC2::VPC", action=a) for i, a in enumerate(actions)]
    made = Plan(
        id="plan-1",
        project_id="web",
        author="ed",
        base_serial=3,
        base_lineage="lin",
        changes=changes,
        risk=risk,
        cost=CostEstimate(monthly_delta=delta),
    ).with_fingerprint()
    return made.model_copy(update=update)


def approved(p: Plan, *, expires_at: datetime = NOW + timedelta(hours=1)) -> Plan:
    approval = Approval(
        approved_by="alice", method=ApprovalMethod.ELICITATION, fingerprint=p.fingerprint, expires_at=expires_at
    )
    return p.model_copy(update={"status": PlanStatus.APPROVED, "approval": approval})


def code_of(fn: object, *args: object) -> str:
    with pytest.raises(InfraError) as caught:
        fn(*args)  # type: ignore[operator]
    return caught.value.code


def test_a_low_risk_cheap_create_and_update_plan_fits_the_default_rule() -> None:
    assert rules.fits_rule(plan(Action.CREATE, Action.UPDATE, Action.NOOP, delta=4.99), AutoApprovalRule())


def test_a_plan_riskier_than_the_rule_allows_does_not_fit() -> None:
    reasons = rules.rule_mismatches(plan(Action.CREATE, risk=RiskLevel.MEDIUM), AutoApprovalRule())
    assert len(reasons) == 1
    assert "risk medium" in reasons[0]


def test_a_higher_risk_ceiling_admits_a_medium_risk_plan() -> None:
    assert rules.fits_rule(plan(Action.CREATE, risk=RiskLevel.MEDIUM), AutoApprovalRule(max_risk=RiskCeiling.MEDIUM))


def test_a_cost_increase_above_the_limit_does_not_fit() -> None:
    assert not rules.fits_rule(plan(Action.CREATE, delta=5.01), AutoApprovalRule())


def test_a_plan_with_unpriced_resources_does_not_fit_because_its_cost_is_unknown() -> None:
    unpriced = plan(Action.CREATE)
    unpriced.cost.unpriced.append(Unpriced(name="bucket", type="AWS::S3::Bucket", reason="usage-based"))
    assert rules.rule_mismatches(unpriced, AutoApprovalRule()) == ["cost could not be estimated for bucket"]


def test_an_action_outside_the_rule_does_not_fit() -> None:
    reasons = rules.rule_mismatches(plan(Action.CREATE, Action.DELETE), AutoApprovalRule())
    assert reasons
    assert "delete" in reasons[0]


def test_a_plan_of_only_no_ops_always_fits() -> None:
    assert rules.fits_rule(plan(Action.NOOP), AutoApprovalRule(actions=[]))


def test_a_plan_with_validation_errors_never_fits() -> None:
    broken = plan(Action.CREATE)
    broken.findings.append(Finding(message="bad"))
    assert not rules.fits_rule(broken, AutoApprovalRule())


def test_an_approval_is_valid_until_its_expiry_and_expired_just_after() -> None:
    approval = approved(plan(Action.CREATE), expires_at=NOW).approval
    assert approval is not None
    assert not rules.is_expired(approval, NOW)
    assert rules.is_expired(approval, NOW + timedelta(microseconds=1))


def test_an_approver_may_approve_a_pending_plan() -> None:
    rules.require_may_approve(plan(Action.CREATE), project(), "alice")


@pytest.mark.parametrize(("user", "code"), [("ed", "AUTH_001"), ("vic", "AUTH_001"), ("stranger", "RESOURCE_001")])
def test_a_user_without_the_approve_permission_may_not_approve(user: str, code: str) -> None:
    # A stranger (no member) is told nothing is there, so that ids cannot be probed.
    assert code_of(rules.require_may_approve, plan(Action.CREATE), project(), user) == code


def test_the_author_may_not_approve_their_own_plan_when_the_project_forbids_it() -> None:
    own = plan(Action.CREATE, author="alice")
    assert code_of(rules.require_may_approve, own, project(allow_self=False), "alice") == "APPROVAL_002"


def test_the_author_may_approve_their_own_plan_when_the_project_allows_it() -> None:
    rules.require_may_approve(plan(Action.CREATE, author="alice"), project(allow_self=True), "alice")


@pytest.mark.parametrize("status", [*sorted(TERMINAL_STATUSES), PlanStatus.APPROVED, PlanStatus.EXECUTING])
def test_only_a_pending_plan_can_be_approved(status: PlanStatus) -> None:
    assert code_of(rules.require_may_approve, plan(Action.CREATE, status=status), project(), "alice") == "PLAN_003"


@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES))
def test_a_final_plan_can_never_be_executed(status: PlanStatus) -> None:
    final = approved(plan(Action.CREATE)).model_copy(update={"status": status})
    assert code_of(execution_rules.require_executable, final, NOW) == "PLAN_003"


def test_a_pending_plan_is_refused_execution_with_approve_first() -> None:
    assert code_of(execution_rules.require_executable, plan(Action.CREATE), NOW) == "APPROVAL_002"


def test_an_expired_approval_is_refused_execution() -> None:
    late = approved(plan(Action.CREATE), expires_at=NOW - timedelta(seconds=1))
    assert code_of(execution_rules.require_executable, late, NOW) == "APPROVAL_001"


def test_a_plan_whose_content_changed_after_approval_is_refused_execution() -> None:
    edited = approved(plan(Action.CREATE))
    edited.changes[0].action = Action.DELETE
    assert code_of(execution_rules.require_executable, edited, NOW) == "PLAN_002"


def test_an_approved_intact_unexpired_plan_is_executable() -> None:
    ok = approved(plan(Action.CREATE))
    assert execution_rules.require_executable(ok, NOW) is ok.approval


def test_a_plan_is_stale_when_the_serial_or_the_lineage_moved() -> None:
    p = plan(Action.CREATE)
    assert not execution_rules.is_stale(p, 3, "lin")
    assert execution_rules.is_stale(p, 4, "lin")
    assert execution_rules.is_stale(p, 3, "other")
    assert code_of(execution_rules.require_fresh, p, 4, "lin") == "PLAN_001"


def test_a_plan_against_a_never_written_state_is_fresh_whatever_its_lineage() -> None:
    assert not execution_rules.is_stale(plan(Action.CREATE, base_serial=0), 0, None)


def test_the_author_may_withdraw_their_own_plan_but_a_viewer_may_not_reject() -> None:
    rules.require_may_reject(plan(Action.CREATE), project(), "ed")
    assert code_of(rules.require_may_reject, plan(Action.CREATE), project(), "vic") == "AUTH_001"


def test_an_executed_plan_cannot_be_rejected() -> None:
    done = plan(Action.CREATE, status=PlanStatus.EXECUTED)
    assert code_of(rules.require_may_reject, done, project(), "alice") == "PLAN_003"
