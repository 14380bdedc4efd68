"""Reconciliation after a crash, kill or cancellation: state and cloud end in agreement."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from infra_mcp.domain.audit import AuditEvent
from infra_mcp.domain.plan import Action, ChangeOutcome, ChangeOutcomeStatus, ExecutionRecord, Plan, PlanStatus
from infra_mcp.domain.state import Journal
from infra_mcp.errors import InfraError
from tests.fakes.cloud_control import SimulatedCrash, World, subnet, vpc


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


async def crash(world: World, resources: list[dict[str, object]], *, at: str) -> str:
    """Execute until the first poll of ``at``'s create, then die as a killed process would."""
    plan = await world.approved(resources)  # type: ignore[arg-type]
    world.upstream.crash_after_issuing(at, "CREATE")
    with pytest.raises(SimulatedCrash):
        await world.execution.execute(plan.id, "ed")
    world.upstream.settle()  # AWS carries on while nobody is watching
    return plan.id


async def assert_state_matches_cloud(world: World) -> None:
    state = await world.state()
    assert sorted((r.type, r.id) for r in state.resources) == sorted(world.cloud.resources)
    assert (await world.store.read_journal("web")).entries == []


async def test_a_crash_leaves_the_in_flight_request_journaled_and_the_plan_executing(world: World) -> None:
    plan_id = await crash(world, [vpc("net"), subnet("sub", "net")], at="sub")
    entries = (await world.store.read_journal("web")).entries
    assert ("sub", "CREATE") in {(e.name, e.operation) for e in entries}
    assert all(e.request_token for e in entries)
    assert (await world.projects.get_plan(plan_id)).status is PlanStatus.EXECUTING


async def test_reconcile_records_what_really_happened_and_finishes_the_plan(world: World) -> None:
    plan_id = await crash(world, [vpc("net"), subnet("sub", "net")], at="sub")
    report = await world.execution.reconcile("web")
    assert report.unresolved == 0
    assert report.plans == {plan_id: PlanStatus.EXECUTED}
    await assert_state_matches_cloud(world)
    sub = (await world.state()).resource("sub")
    assert sub is not None
    assert sub.declared["VpcId"] == {"Ref": "net"}
    plan = await world.projects.get_plan(plan_id)
    assert plan.execution is not None
    assert plan.execution.final_serial == (await world.state()).serial
    assert world.projects.audit[-1].action == "state.reconcile"


async def test_a_request_that_failed_while_nobody_watched_is_not_invented_and_fails_the_plan(world: World) -> None:
    world.upstream.fail("sub", "CREATE", "InvalidRequest", "no room")
    plan_id = await crash(world, [vpc("net"), subnet("sub", "net")], at="sub")
    report = await world.execution.reconcile("web")
    assert report.plans == {plan_id: PlanStatus.FAILED}
    await assert_state_matches_cloud(world)
    assert [r.name for r in (await world.state()).resources] == ["net"]
    plan = await world.projects.get_plan(plan_id)
    assert plan.execution is not None
    outcome = next(o for o in plan.execution.outcomes if o.name == "sub")
    assert (outcome.status, outcome.error_code) == (ChangeOutcomeStatus.FAILED, "InvalidRequest")


async def test_changes_never_started_before_the_crash_are_reported_skipped(world: World) -> None:
    plan_id = await crash(world, [vpc("net"), subnet("sub", "net")], at="net")
    await world.execution.reconcile("web")
    plan = await world.projects.get_plan(plan_id)
    assert plan.status is PlanStatus.FAILED
    assert plan.execution is not None
    statuses = {o.name: o.status for o in plan.execution.outcomes}
    assert statuses == {"net": ChangeOutcomeStatus.SUCCEEDED, "sub": ChangeOutcomeStatus.SKIPPED}
    await assert_state_matches_cloud(world)


async def test_a_request_journaled_without_its_token_is_reissued_with_the_same_client_token(world: World) -> None:
    await crash(world, [vpc("net")], at="net")
    journal = await world.store.read_journal("web")
    for entry in journal.entries:
        entry.request_token = None  # died before learning the token
    await world.store.write_journal(journal)
    report = await world.execution.reconcile("web")
    assert report.unresolved == 0
    assert len(world.cloud.resources) == 1  # the replayed ClientToken did not create a second VPC
    await assert_state_matches_cloud(world)


async def test_a_cancelled_execution_is_reconciled_to_agreement(tmp_path: Path) -> None:
    world = World(tmp_path, polls=4, parallelism=2)
    plan = await world.approved([vpc(f"v{i}", f"10.{i}.0.0/16") for i in range(6)])
    with anyio.CancelScope() as scope:
        original = world.sleep

        async def sleep_then_cancel(seconds: float) -> None:
            await original(seconds)
            if len(world.sleeps) == 5:
                scope.cancel()

        world.execution.sleep = sleep_then_cancel
        await world.execution.execute(plan.id, "ed")
    assert world.store.locks == {}
    world.upstream.settle()
    world.execution.sleep = world.sleep
    await world.execution.reconcile("web")
    await assert_state_matches_cloud(world)
    assert (await world.projects.get_plan(plan.id)).status is PlanStatus.FAILED


async def test_execute_reconciles_a_left_over_journal_first_then_refuses_the_now_stale_plan(world: World) -> None:
    crashed = await crash(world, [vpc("net")], at="net")
    other = await world.approved([vpc("net"), vpc("more", "10.1.0.0/16")])
    with pytest.raises(InfraError) as caught:
        await world.execution.execute(other.id, "ed")
    assert caught.value.code == "PLAN_001"
    assert (await world.projects.get_plan(crashed)).status is PlanStatus.EXECUTED
    await assert_state_matches_cloud(world)


async def test_reconcile_all_handles_every_project_with_a_journal(world: World) -> None:
    await crash(world, [vpc("net")], at="net")
    reports = await world.execution.reconcile_all()
    assert [r.project_id for r in reports] == ["web"]
    await assert_state_matches_cloud(world)
    assert await world.execution.reconcile_all() == []


async def test_reconcile_refuses_while_an_execution_holds_the_lock(world: World) -> None:
    await world.store.acquire_lock("web", owner="other", operation="execute", lease_seconds=60)
    with pytest.raises(InfraError) as caught:
        await world.execution.reconcile("web")
    assert caught.value.code == "STATE_003"


# ---- a change whose result reached the state before the crash ---------------------------------------


def crash_when_the_journal_is_emptied(world: World) -> None:
    """Die right after the checkpoint that drops the last journal entry (its state version is written)."""
    write = world.store.write_journal

    async def write_then_die(journal: Journal) -> None:
        had_entries = bool((await world.store.read_journal(journal.project_id)).entries)
        await write(journal)
        if had_entries and not journal.entries:
            raise SimulatedCrash("killed after the checkpoint")

    world.store.write_journal = write_then_die  # type: ignore[method-assign]


async def test_the_checkpoint_that_drops_a_journal_entry_saves_the_change_as_succeeded(tmp_path: Path) -> None:
    world = World(tmp_path, checkpoint_every=1)  # every result is checkpointed at once
    plan = await world.approved([vpc("net")])
    crash_when_the_journal_is_emptied(world)
    with pytest.raises(SimulatedCrash):
        await world.execution.execute(plan.id, "ed")
    assert (await world.store.read_journal("web")).entries == []
    assert [r.name for r in (await world.state()).resources] == ["net"]
    saved = await world.projects.get_plan(plan.id)
    assert saved.status is PlanStatus.EXECUTING  # the final status write never happened
    assert saved.execution is not None
    (outcome,) = saved.execution.outcomes
    assert outcome.status is ChangeOutcomeStatus.SUCCEEDED
    assert outcome.physical_id == world.upstream.identifier_of("net")

    world.store.write_journal = type(world.store).write_journal.__get__(world.store)  # type: ignore[method-assign]
    report = await world.execution.reconcile("web")
    assert report.plans == {plan.id: PlanStatus.EXECUTED}
    await assert_state_matches_cloud(world)


async def left_running(world: World, plan_id: str) -> None:
    """The plan as a kill leaves it if the outcomes were saved 'running' and the journal is empty."""
    plan = world.projects.plans[plan_id]
    plan.status = PlanStatus.EXECUTING
    if plan.execution is None:
        plan.execution = ExecutionRecord(
            started_at=world.now,
            executed_by="ed",
            outcomes=[ChangeOutcome(name=c.name, action=c.action) for c in plan.actionable_changes],
        )
    plan.execution.finished_at = None
    plan.execution.final_serial = None
    for outcome in plan.execution.outcomes:
        outcome.status = ChangeOutcomeStatus.RUNNING
        outcome.finished_at = None


async def outcomes_after_reconcile(world: World, plan_id: str) -> dict[str, tuple[ChangeOutcomeStatus, str | None]]:
    await world.execution.reconcile("web")
    plan = await world.projects.get_plan(plan_id)
    assert plan.execution is not None
    return {o.name: (o.status, o.error_code) for o in plan.execution.outcomes}


SUCCEEDED = (ChangeOutcomeStatus.SUCCEEDED, None)
INTERRUPTED = (ChangeOutcomeStatus.FAILED, "Interrupted")


async def test_reconcile_reports_succeeded_the_running_changes_the_state_shows_completed(world: World) -> None:
    await world.apply([vpc("old"), vpc("gone", "10.9.0.0/16")])
    world.advance(minutes=1)
    plan = await world.apply([vpc("old", EnableDnsSupport=False), subnet("sub", "old")])  # update + create + delete
    assert plan.status is PlanStatus.EXECUTED
    assert {c.name: c.action for c in plan.actionable_changes} == {
        "old": Action.UPDATE,
        "sub": Action.CREATE,
        "gone": Action.DELETE,
    }
    await left_running(world, plan.id)
    assert await outcomes_after_reconcile(world, plan.id) == {"old": SUCCEEDED, "sub": SUCCEEDED, "gone": SUCCEEDED}
    assert (await world.projects.get_plan(plan.id)).status is PlanStatus.EXECUTED


async def test_reconcile_never_reports_succeeded_a_running_change_the_state_does_not_show(world: World) -> None:
    await world.apply([vpc("old"), vpc("gone", "10.9.0.0/16")])
    world.advance(minutes=1)
    plan = await world.approved([vpc("old", EnableDnsSupport=False), subnet("sub", "old")])
    # Killed after the outcomes were saved 'running' but before any request was journaled or sent.
    await left_running(world, plan.id)
    assert await outcomes_after_reconcile(world, plan.id) == {
        "old": INTERRUPTED,
        "sub": INTERRUPTED,
        "gone": INTERRUPTED,
    }
    assert (await world.projects.get_plan(plan.id)).status is PlanStatus.FAILED
    await assert_state_matches_cloud(world)


async def test_a_half_done_replacement_left_running_is_not_reported_succeeded(world: World) -> None:
    await world.apply([vpc("net")])
    world.advance(minutes=1)
    plan = await world.approved([vpc("net", "10.7.0.0/16")])  # CidrBlock is create-only: a replacement
    assert [c.action for c in plan.actionable_changes] == [Action.REPLACE]
    world.upstream.fail("net", "DELETE", "GeneralServiceException", "stuck")
    done = await world.execution.execute(plan.id, "ed")  # the new VPC exists, the old one is kept (retired)
    assert done.status is PlanStatus.FAILED
    await left_running(world, plan.id)
    assert await outcomes_after_reconcile(world, plan.id) == {"net": INTERRUPTED}


async def test_a_replacement_whose_new_half_finished_after_a_crash_is_not_reported_succeeded(world: World) -> None:
    await world.apply([vpc("net")])
    world.advance(minutes=1)
    plan = await world.approved([vpc("net", "10.7.0.0/16")])  # CidrBlock is create-only: a replacement
    world.upstream.crash_after_issuing("net", "CREATE")
    with pytest.raises(SimulatedCrash):
        await world.execution.execute(plan.id, "ed")
    world.upstream.settle()  # the new VPC comes into being while nobody watches; the old one was never deleted
    report = await world.execution.reconcile("web")
    assert report.plans == {plan.id: PlanStatus.FAILED}
    done = await world.projects.get_plan(plan.id)
    assert done.execution is not None
    (outcome,) = done.execution.outcomes
    assert outcome.status is ChangeOutcomeStatus.FAILED
    assert outcome.error_code == "Interrupted"
    await assert_state_matches_cloud(world)  # both VPCs exist, and the state records both


async def test_a_reconciled_outcome_and_its_audit_line_are_written_in_one_unit_of_work(world: World) -> None:
    plan_id = await crash(world, [vpc("net"), subnet("sub", "net")], at="sub")
    writes: list[tuple[str, PlanStatus, str | None, object]] = []
    original = world.projects.update_plan

    async def recording(plan: Plan, *, expected_status: PlanStatus, audit: AuditEvent | None = None) -> Plan:
        told = (audit.action, audit.details.get("reconciled")) if audit is not None else (None, None)
        writes.append((plan.id, plan.status, *told))
        return await original(plan, expected_status=expected_status, audit=audit)

    world.projects.update_plan = recording  # type: ignore[method-assign]
    await world.execution.reconcile("web")
    assert (plan_id, PlanStatus.EXECUTED, "plan.execute", True) in writes
