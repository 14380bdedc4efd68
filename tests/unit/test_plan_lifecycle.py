"""The plan's lifecycle lives in the plan: one method per transition, each refusing an illegal move.

pending -> approved -> executing -> executed | failed, plus rejected, expired and superseded; a
reconciliation may turn failed into executed. Every other move is PLAN_003, whatever calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from infra_mcp.domain.plan import (
    MOVES,
    Action,
    Approval,
    ApprovalMethod,
    ApprovalRequest,
    ChangeOutcome,
    ChangeOutcomeStatus,
    ExecutionRecord,
    Plan,
    PlanStatus,
    Rejection,
)
from infra_mcp.errors import PlanStatusInvalid

NOW = datetime(2026, 1, 15, 10, 30, tzinfo=UTC)


def _plan(status: PlanStatus) -> Plan:
    return Plan(id="plan-0123456789ab", project_id="web", author="ed", base_serial=0, base_lineage=None, status=status)


def _record(*statuses: ChangeOutcomeStatus) -> ExecutionRecord:
    return ExecutionRecord(
        started_at=NOW,
        outcomes=[ChangeOutcome(name=f"r{i}", action=Action.CREATE, status=s) for i, s in enumerate(statuses)],
    )


APPROVAL = Approval(
    approved_by="alice", method=ApprovalMethod.ELICITATION, fingerprint="f", expires_at=NOW + timedelta(hours=1)
)

# Each transition method, and the status it moves to.
TRANSITIONS: dict[str, tuple[Callable[[Plan], Plan], PlanStatus]] = {
    "approve": (lambda p: p.approve(APPROVAL), PlanStatus.APPROVED),
    "reject": (lambda p: p.reject(Rejection(rejected_by="alice")), PlanStatus.REJECTED),
    "expire": (lambda p: p.expire(), PlanStatus.EXPIRED),
    "supersede": (lambda p: p.supersede(), PlanStatus.SUPERSEDED),
    "start": (lambda p: p.start(_record(ChangeOutcomeStatus.PENDING)), PlanStatus.EXECUTING),
    "finish ok": (lambda p: p.finish(_record(ChangeOutcomeStatus.SUCCEEDED)), PlanStatus.EXECUTED),
    "finish failed": (
        lambda p: p.finish(_record(ChangeOutcomeStatus.SUCCEEDED, ChangeOutcomeStatus.FAILED)),
        PlanStatus.FAILED,
    ),
}


@pytest.mark.parametrize("status", list(PlanStatus))
@pytest.mark.parametrize("name", sorted(TRANSITIONS))
def test_a_transition_happens_exactly_when_the_lifecycle_allows_it(status: PlanStatus, name: str) -> None:
    move, target = TRANSITIONS[name]
    plan = _plan(status)
    if target in MOVES.get(status, frozenset()):
        moved = move(plan)
        assert moved.status is target
        assert plan.status is status  # the original is left as it was (the store compares and sets)
    else:
        with pytest.raises(PlanStatusInvalid) as caught:
            move(plan)
        assert caught.value.code == "PLAN_003"
        assert caught.value.details["status"] == status.value


def test_the_lifecycle_is_the_documented_one() -> None:
    assert {s: sorted(t) for s, t in MOVES.items()} == {
        PlanStatus.PENDING: sorted([PlanStatus.APPROVED, PlanStatus.REJECTED, PlanStatus.SUPERSEDED]),
        PlanStatus.APPROVED: sorted(
            [PlanStatus.EXECUTING, PlanStatus.REJECTED, PlanStatus.EXPIRED, PlanStatus.SUPERSEDED]
        ),
        PlanStatus.EXECUTING: sorted([PlanStatus.EXECUTED, PlanStatus.FAILED]),
        PlanStatus.FAILED: [PlanStatus.EXECUTED],
    }


def test_approving_and_rejecting_carry_their_records() -> None:
    approved = _plan(PlanStatus.PENDING).approve(APPROVAL)
    assert approved.approval == APPROVAL
    rejected = approved.reject(Rejection(rejected_by="alice", reason="no"))
    assert rejected.rejection is not None
    assert rejected.rejection.reason == "no"


def test_a_failed_plan_becomes_executed_only_when_every_change_succeeded() -> None:
    failed = _plan(PlanStatus.FAILED)
    assert failed.finish(_record(ChangeOutcomeStatus.SUCCEEDED)).status is PlanStatus.EXECUTED
    with pytest.raises(PlanStatusInvalid):
        failed.finish(_record(ChangeOutcomeStatus.FAILED))


@pytest.mark.parametrize("status", list(PlanStatus))
def test_only_a_pending_plan_can_wait_for_an_out_of_band_approval(status: PlanStatus) -> None:
    request = ApprovalRequest(requested_by="ed", command="infra-mcp plans approve plan-0123456789ab")
    if status is PlanStatus.PENDING:
        assert _plan(status).await_out_of_band(request).approval_request == request
    else:
        with pytest.raises(PlanStatusInvalid):
            _plan(status).await_out_of_band(request)


@pytest.mark.parametrize("status", list(PlanStatus))
def test_outcomes_are_recorded_only_on_a_plan_that_ran(status: PlanStatus) -> None:
    record = _record(ChangeOutcomeStatus.RUNNING)
    if status in (PlanStatus.EXECUTING, PlanStatus.EXECUTED, PlanStatus.FAILED):
        updated = _plan(status).with_execution(record)
        assert (updated.status, updated.execution) == (status, record)
    else:
        with pytest.raises(PlanStatusInvalid):
            _plan(status).with_execution(record)
