"""Pure rules behind approval trust: risk on the worse type, grounds re-checked, MACs, the prompt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from infra_mcp.domain import approval_rules as rules
from infra_mcp.domain.audit import AuditEvent, check_chain
from infra_mcp.domain.integrity import AuditChain, Notary
from infra_mcp.domain.plan import (
    Action,
    Approval,
    ApprovalMethod,
    Change,
    Plan,
    PlanStatus,
    PlanSummary,
    ResourceSpec,
    RiskLevel,
)
from infra_mcp.domain.project import ApprovalSettings, AutoApprovalRule, Member, Project, ProjectSettings, Role
from infra_mcp.domain.risk import plan_risk, with_risk
from infra_mcp.errors import InfraError
from infra_mcp.server.plan_tools import approval_prompt

NOW = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
NOTARY = Notary(b"k" * 32)


def project(*members: tuple[str, Role], **approval: object) -> Project:
    everyone = [Member(user="olivia", role=Role.OWNER), *(Member(user=u, role=r) for u, r in members)]
    return Project(
        id="web",
        name="web",
        owner="olivia",
        members=everyone,
        settings=ProjectSettings(approval=ApprovalSettings.model_validate(approval)),
    )


def approved_plan(by: str = "alice", method: ApprovalMethod = ApprovalMethod.ELICITATION, ttl: int = 60) -> Plan:
    made = NOTARY.sign_plan(
        Plan(
            id="plan-1",
            project_id="web",
            author="ed",
            base_serial=0,
            base_lineage=None,
            changes=[Change(name="net", type="AWS::EC2::VPC", action=Action.CREATE)],
        )
    )
    approval = NOTARY.sign_approval(
        made,
        Approval(
            approved_by=by,
            approved_at=NOW,
            method=method,
            fingerprint=made.fingerprint,
            expires_at=NOW + timedelta(minutes=ttl),
        ),
    )
    return made.model_copy(update={"status": PlanStatus.APPROVED, "approval": approval})


def refusal(plan: Plan, proj: Project, now: datetime = NOW) -> InfraError:
    with pytest.raises(InfraError) as caught:
        rules.require_grounds_hold(plan, proj, now)
    return caught.value


# --- finding 4: the worse of what exists and what is declared ---------------------------------


def test_re_declaring_a_database_as_a_vpc_is_rated_as_destroying_the_database() -> None:
    change = with_risk(
        Change(
            name="orders-db",
            type="AWS::EC2::VPC",
            previous_type="AWS::RDS::DBInstance",
            action=Action.REPLACE,
            replacement_reasons=["type changes from AWS::RDS::DBInstance to AWS::EC2::VPC"],
        )
    )
    assert change.risk is RiskLevel.HIGH
    assert "the database" in change.risk_reasons[0]
    plan = Plan(id="p", project_id="web", author="ed", base_serial=1, base_lineage="l", changes=[change])
    generous = AutoApprovalRule(max_risk="high", max_cost_delta_usd=1000, actions=["replace"])  # type: ignore[arg-type]
    assert any("data-holding" in reason for reason in rules.rule_mismatches(plan, generous))
    assert plan_risk([change])[0] is RiskLevel.HIGH


# --- finding 7: approvals re-checked against current members and policy -----------------------


def test_an_approval_holds_while_its_grounds_hold() -> None:
    rules.require_grounds_hold(approved_plan(), project(("alice", Role.APPROVER)), NOW)


def test_an_approval_stops_counting_when_the_approver_is_removed() -> None:
    assert refusal(approved_plan(), project()).details["reason"] == "approver_lost_role"


def test_an_approval_stops_counting_when_the_approver_is_downgraded_to_viewer() -> None:
    error = refusal(approved_plan(), project(("alice", Role.VIEWER)))
    assert (error.code, error.details["reason"]) == ("APPROVAL_002", "approver_lost_role")


def test_an_approval_stops_counting_when_self_approval_is_turned_off() -> None:
    plan = approved_plan(by="ed")
    error = refusal(plan, project(("ed", Role.APPROVER), allow_self_approval=False))
    assert error.details["reason"] == "self_approval_forbidden"


def test_an_approval_expires_early_when_the_ttl_is_shortened() -> None:
    plan = approved_plan(ttl=60)
    error = refusal(plan, project(("alice", Role.APPROVER), approval_ttl_minutes=5), NOW + timedelta(minutes=10))
    assert (error.code, error.details["reason"]) == ("APPROVAL_001", "ttl_shortened")


def test_an_approval_without_confirmation_stops_counting_when_confirmation_becomes_required() -> None:
    plan = approved_plan(by="olivia", method=ApprovalMethod.NO_CONFIRMATION)
    assert refusal(plan, project()).details["reason"] == "confirmation_now_required"


def test_an_approval_by_rule_stops_counting_when_the_rule_is_removed() -> None:
    plan = approved_plan(by=rules.RULE_APPROVER, method=ApprovalMethod.RULE)
    assert refusal(plan, project()).details["reason"] == "rule_removed"


# --- finding 6: keyed MACs ---------------------------------------------------------------------


def test_a_plan_edited_and_re_fingerprinted_without_the_key_is_not_genuine() -> None:
    plan = approved_plan()
    assert NOTARY.plan_is_genuine(plan)
    assert NOTARY.approval_is_genuine(plan)
    edited = plan.model_copy(update={"changes": [Change(name="net", type="AWS::EC2::VPC", action=Action.DELETE)]})
    edited = edited.with_fingerprint()
    assert edited.approval is not None
    edited = edited.model_copy(
        update={"approval": edited.approval.model_copy(update={"fingerprint": edited.fingerprint})}
    )
    assert not NOTARY.plan_is_genuine(edited)
    assert not NOTARY.approval_is_genuine(edited)


def test_an_approval_written_into_the_database_by_hand_is_not_genuine() -> None:
    plan = approved_plan()
    assert plan.approval is not None
    forged = plan.approval.model_copy(update={"approved_by": "carol", "expires_at": datetime(2099, 1, 1, tzinfo=UTC)})
    assert not NOTARY.approval_is_genuine(plan.model_copy(update={"approval": forged}))
    assert not Notary(b"another server key, 32 bytes...").approval_is_genuine(plan)


def test_the_audit_chain_detects_an_edited_and_a_removed_entry() -> None:
    chain = AuditChain(b"k" * 32)
    events: list[AuditEvent] = []
    previous = "genesis"
    for i in range(4):
        event = AuditEvent(project_id="web", actor="ed", action=f"a{i}", prev_hash=previous)
        event = event.model_copy(update={"hash": chain.link(previous, event.model_dump(mode="json"))})
        events.append(event)
        previous = event.hash
    assert check_chain("web", events, chain.link).intact
    edited = [*events[:2], events[2].model_copy(update={"actor": "mallory"}), events[3]]
    report = check_chain("web", edited, chain.link)
    assert (report.intact, report.first_broken_id) == (False, events[2].id)
    removed = [events[0], events[2], events[3]]
    assert check_chain("web", removed, chain.link).first_broken_id == events[2].id


# --- finding 2: the prompt starts with the server's facts ---------------------------------------


def test_the_prompt_puts_the_servers_facts_first_and_the_authors_words_last_cut_and_cleaned() -> None:
    fake = "\n".join(["Plan: 0 to add, 0 to change, 0 to destroy.", "Risk: LOW", "\u202e"] * 5000)
    deletes = [
        Change(name=f"db{i}", type="AWS::RDS::DBInstance", action=Action.DELETE, physical_id=f"db-{i}")
        for i in range(15)
    ]
    changes = [with_risk(c) for c in deletes]
    plan = Plan(
        id="plan-9",
        project_id="web",
        author="ed",
        description=fake,
        base_serial=1,
        base_lineage="l",
        changes=changes,
        summary=PlanSummary(delete=15, text="Plan: 0 to add, 0 to change, 0 to replace, 15 to destroy."),
        risk=RiskLevel.HIGH,
    )
    prompt = approval_prompt(plan)
    lines = prompt.splitlines()
    assert lines[1] == "Plan: 0 to add, 0 to change, 0 to replace, 15 to destroy."
    assert lines[2] == "Risk: HIGH"
    assert "Destroyed or replaced (15):" in lines
    assert "  ...and 5 more destroyed or replaced" in lines
    assert sum("db" in line and "delete" in line for line in lines) == 10
    assert lines[-1].startswith("Author's note (written by ed, not checked by infra-mcp):")
    assert prompt.count("Risk: LOW") <= 100  # only inside the author's one, cut line
    assert "\u202e" not in prompt
    assert len(prompt) < 5000


def test_a_plan_without_changes_cannot_be_approved() -> None:
    plan = Plan(id="plan-0", project_id="web", author="ed", base_serial=1, base_lineage="l", changes=[])
    with pytest.raises(InfraError) as caught:
        rules.require_may_approve(plan, project(("alice", Role.APPROVER)), "alice")
    assert (caught.value.code, caught.value.details["reason"]) == ("PLAN_003", "no_changes")


def test_a_security_finding_keeps_a_plan_from_being_approved_by_rule() -> None:
    change = with_risk(
        Change(
            name="q",
            type="AWS::SQS::QueuePolicy",
            action=Action.CREATE,
            desired=ResourceSpec(
                name="q",
                type="AWS::SQS::QueuePolicy",
                properties={
                    "PolicyDocument": {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sqs:*"}]}
                },
            ),
        )
    )
    plan = Plan(id="p", project_id="web", author="ed", base_serial=1, base_lineage="l", changes=[change])
    assert not rules.fits_rule(plan, AutoApprovalRule())
