"""ApprovalService: approve, decline, cancel, reject and approve-by-rule, each audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from infra_mcp.domain.plan import Action, ApprovalMethod, Change, Plan, PlanStatus
from infra_mcp.domain.project import (
    ApprovalSettings,
    AutoApprovalRule,
    Member,
    Project,
    ProjectSettings,
    Role,
)
from infra_mcp.domain.state import StateFile
from infra_mcp.errors import InfraError
from infra_mcp.services.approvals import ApprovalService
from tests.fakes.stores import TEST_NOTARY, FakeProjectStore, FakeStateStores

NOW = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)


class World:
    def __init__(self, **approval: object) -> None:
        self.projects = FakeProjectStore()
        self.states = FakeStateStores()
        self.now = NOW
        self.service = ApprovalService(self.projects, self.states, notary=TEST_NOTARY, clock=lambda: self.now)
        self.project = Project(
            id="web",
            name="web",
            owner="olivia",
            members=[
                Member(user="olivia", role=Role.OWNER),
                Member(user="alice", role=Role.APPROVER),
                Member(user="ed", role=Role.EDITOR),
            ],
            settings=ProjectSettings(approval=ApprovalSettings.model_validate(approval)),
        )
        self.projects.projects["web"] = self.project

    async def plan(self, *actions: Action, author: str = "ed", base_serial: int = 0) -> Plan:
        made = Plan(
            id=f"plan-{len(self.projects.plans) + 1}",
            project_id="web",
            author=author,
            base_serial=base_serial,
            base_lineage=None,
            changes=[Change(name=f"r{i}", type="AWS::EC2::VPC", action=a) for i, a in enumerate(actions)],
        )
        return await self.projects.save_plan(TEST_NOTARY.sign_plan(made))

    def audit(self, action: str) -> list[tuple[str, str]]:
        return [(e.actor, e.outcome) for e in self.projects.audit if e.action == action]


async def refused(coro: object) -> InfraError:
    with pytest.raises(InfraError) as caught:
        await coro  # type: ignore[misc]
    return caught.value


async def test_approve_binds_the_fingerprint_and_expires_after_the_project_ttl() -> None:
    world = World(approval_ttl_minutes=30)
    plan = await world.plan(Action.CREATE)
    approved = await world.service.approve(
        plan.id, "alice", method=ApprovalMethod.ELICITATION, agent_comment="agent says", person_comment="lgtm"
    )
    assert approved.status is PlanStatus.APPROVED
    assert approved.approval is not None
    assert approved.approval.fingerprint == plan.fingerprint
    assert approved.approval.expires_at == NOW + timedelta(minutes=30)
    assert (
        approved.approval.approved_by,
        approved.approval.method,
        approved.approval.person_comment,
        approved.approval.agent_comment,
    ) == ("alice", ApprovalMethod.ELICITATION, "lgtm", "agent says")
    assert (await world.projects.get_plan(plan.id)).status is PlanStatus.APPROVED
    assert world.audit("plan.approve") == [("alice", "ok")]


@pytest.mark.parametrize("outcome", ["declined", "cancelled"])
async def test_a_declined_or_cancelled_prompt_is_recorded_and_the_plan_stays_pending(outcome: str) -> None:
    world = World()
    plan = await world.plan(Action.CREATE)
    await world.service.record_declined(plan.id, "alice", outcome, person_comment="not now")  # type: ignore[arg-type]
    assert (await world.projects.get_plan(plan.id)).status is PlanStatus.PENDING
    assert world.audit("plan.approve") == [("alice", outcome)]


async def test_self_approval_is_refused_and_audited_when_the_project_forbids_it() -> None:
    world = World(allow_self_approval=False)
    plan = await world.plan(Action.CREATE, author="alice")
    error = await refused(world.service.check_approvable(plan.id, "alice"))
    assert error.code == "APPROVAL_002"
    assert error.details["reason"] == "self_approval_forbidden"
    assert world.audit("plan.approve") == [("alice", "refused")]
    assert world.projects.audit[-1].details["code"] == "APPROVAL_002"


async def test_an_editor_cannot_approve() -> None:
    world = World()
    plan = await world.plan(Action.CREATE)
    assert (await refused(world.service.approve(plan.id, "ed", method=ApprovalMethod.ELICITATION))).code == "AUTH_001"


async def test_a_stale_plan_is_refused_before_asking_a_human_and_becomes_superseded() -> None:
    world = World()
    plan = await world.plan(Action.CREATE)
    moved = StateFile.empty("web").next_version([], user="x", description="moved")
    await world.states.for_project(world.project).write(moved)
    assert (await refused(world.service.check_approvable(plan.id, "alice"))).code == "PLAN_001"
    assert (await world.projects.get_plan(plan.id)).status is PlanStatus.SUPERSEDED


async def test_a_plan_edited_in_the_database_is_refused_approval() -> None:
    world = World()
    plan = await world.plan(Action.CREATE)
    world.projects.plans[plan.id].changes[0].action = Action.DELETE
    assert (await refused(world.service.check_approvable(plan.id, "alice"))).code == "INTEGRITY_001"


async def test_a_plan_approved_twice_is_refused_the_second_time() -> None:
    world = World()
    plan = await world.plan(Action.CREATE)
    await world.service.approve(plan.id, "alice", method=ApprovalMethod.OUT_OF_BAND)
    again = await refused(world.service.approve(plan.id, "olivia", method=ApprovalMethod.OUT_OF_BAND))
    assert again.code == "PLAN_003"


async def test_no_confirmation_is_refused_where_a_human_must_confirm() -> None:
    world = World()
    plan = await world.plan(Action.CREATE)
    error = await refused(world.service.approve(plan.id, "alice", method=ApprovalMethod.NO_CONFIRMATION))
    assert error.code == "APPROVAL_002"
    assert (await world.projects.get_plan(plan.id)).status is PlanStatus.PENDING


async def test_no_confirmation_is_accepted_where_the_project_opted_out() -> None:
    world = World(require_human_confirmation=False)
    plan = await world.plan(Action.CREATE)
    assert world.service.requires_human(world.project) is False
    approved = await world.service.approve(plan.id, "alice", method=ApprovalMethod.NO_CONFIRMATION)
    assert approved.approval is not None
    assert approved.approval.method is ApprovalMethod.NO_CONFIRMATION


async def test_reject_is_final_the_plan_can_never_be_approved_afterwards() -> None:
    world = World()
    plan = await world.plan(Action.CREATE)
    rejected = await world.service.reject(plan.id, "alice", "too big")
    assert rejected.status is PlanStatus.REJECTED
    assert rejected.rejection is not None
    assert rejected.rejection.reason == "too big"
    assert world.audit("plan.reject") == [("alice", "ok")]
    assert (await refused(world.service.approve(plan.id, "alice", method=ApprovalMethod.ELICITATION))).code == (
        "PLAN_003"
    )


async def test_an_approved_plan_can_still_be_rejected() -> None:
    world = World()
    plan = await world.plan(Action.CREATE)
    await world.service.approve(plan.id, "alice", method=ApprovalMethod.ELICITATION)
    assert (await world.service.reject(plan.id, "olivia")).status is PlanStatus.REJECTED


async def test_rejecting_a_rejected_plan_is_refused_and_audited() -> None:
    world = World()
    plan = await world.plan(Action.CREATE)
    await world.service.reject(plan.id, "alice")
    assert (await refused(world.service.reject(plan.id, "alice"))).code == "PLAN_003"
    assert world.audit("plan.reject") == [("alice", "ok"), ("alice", "refused")]


async def test_a_plan_that_fits_the_auto_approval_rule_is_approved_by_rule() -> None:
    world = World(auto_approval=AutoApprovalRule())
    plan = await world.plan(Action.CREATE, Action.NOOP)
    approved = await world.service.apply_rules(plan)
    assert approved.status is PlanStatus.APPROVED
    assert approved.approval is not None
    assert (approved.approval.method, approved.approval.approved_by) == (ApprovalMethod.RULE, "rule:auto-approval")
    assert world.audit("plan.approve") == [("rule:auto-approval", "ok")]


async def test_a_plan_outside_the_auto_approval_rule_stays_pending_and_says_why() -> None:
    world = World(auto_approval=AutoApprovalRule())
    plan = await world.plan(Action.DELETE)
    assert (await world.service.apply_rules(plan)).status is PlanStatus.PENDING
    event = world.projects.audit[-1]
    assert (event.action, event.outcome) == ("plan.auto_approve", "not_applicable")
    assert "delete" in event.details["reasons"][0]


async def test_without_a_rule_apply_rules_leaves_the_plan_pending_and_silent() -> None:
    world = World()
    plan = await world.plan(Action.CREATE)
    assert (await world.service.apply_rules(plan)).status is PlanStatus.PENDING
    assert world.projects.audit == []


async def test_approve_by_rule_cannot_be_requested_directly() -> None:
    world = World(auto_approval=AutoApprovalRule())
    plan = await world.plan(Action.CREATE)
    assert (await refused(world.service.approve(plan.id, "alice", method=ApprovalMethod.RULE))).code == ("APPROVAL_002")
