"""Reconciliation after a crash, kill or cancellation: state and cloud end in agreement."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from infra_mcp.domain.plan import ChangeOutcomeStatus, PlanStatus
from infra_mcp.errors import InfraError
from tests.fake_upstream import SimulatedCrash, World, subnet, vpc


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
