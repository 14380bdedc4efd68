"""One project's failing storage degrades that project only, and it recovers by itself (issue 16)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from infra_mcp.domain.health import Reconciliation, StorageHealth
from infra_mcp.domain.plan import PlanStatus
from infra_mcp.domain.project import Member, Project, Role
from infra_mcp.errors import InfraError
from infra_mcp.services.execution.reconcile import ReconcileReport
from infra_mcp.services.health import HealthService, TrackedStates
from infra_mcp.services.projects import ProjectService
from infra_mcp.services.state import StateService
from tests.fakes.cloud_control import SimulatedCrash, World, vpc
from tests.fakes.stores import FlakyStateStores


class Degradable:
    """A World whose services reach state through TrackedStates over storage that can go down."""

    def __init__(self, tmp_path: Path, *, deadline: float = 30.0) -> None:
        self.world = World(tmp_path)
        self.storage = FlakyStateStores(self.world.store)
        self.health = HealthService(deadline_seconds=deadline)
        self.states = TrackedStates(self.storage, self.health)
        self.world.execution.states = self.states
        self.world.approvals.states = self.states
        self.health.bind(self.world.execution.reconcile_if_needed)
        other = Project(id="other", name="other", owner="olivia", members=[Member(user="olivia", role=Role.OWNER)])
        self.world.projects.projects["other"] = other

    async def start(self) -> None:
        """Start-up: check every project in the background, then wait until all checks ended."""
        async with anyio.create_task_group() as group:
            self.health.start(group, [("web", "s3://team/web"), ("other", "/state")])


@pytest.fixture
def env(tmp_path: Path) -> Degradable:
    return Degradable(tmp_path)


async def crash_mid_execution(env: Degradable) -> str:
    """An execution of 'web' dies after issuing its create: the journal holds an in-flight token."""
    plan = await env.world.approved([vpc("net")])
    env.world.upstream.crash_after_issuing("net", "CREATE")
    with pytest.raises(SimulatedCrash):
        await env.world.execution.execute(plan.id, "ed")
    env.world.upstream.settle()
    journal = await env.world.store.read_journal("web")
    assert [e.request_token is not None for e in journal.entries] == [True]
    return plan.id


async def test_a_project_whose_storage_is_down_at_start_up_is_degraded_and_the_others_are_not(
    env: Degradable,
) -> None:
    env.storage.down.add("web")
    await env.start()

    web, other = env.health.of("web"), env.health.of("other")
    assert (web.storage, web.reconciliation) == (StorageHealth.DEGRADED, Reconciliation.FAILED)
    assert web.error is not None
    assert web.error.code == "STATE_004"
    assert (other.storage, other.reconciliation) == (StorageHealth.HEALTHY, Reconciliation.NOTHING_TO_DO)


async def test_a_degraded_projects_reads_return_the_storage_error_naming_the_project_and_the_next_step(
    env: Degradable,
) -> None:
    env.storage.down.add("web")
    await env.start()
    service = StateService(_projects_over(env))

    with pytest.raises(InfraError) as caught:
        await service.current("web", "olivia")
    assert caught.value.code == "STATE_004"
    assert caught.value.details["degraded_project"] == "web"
    assert "credentials" in caught.value.message
    assert "state_location" in caught.value.message
    _, state = await service.current("other", "olivia")
    assert state.serial == 0


async def test_a_project_recovers_at_its_next_call_once_its_storage_answers(env: Degradable) -> None:
    env.storage.down.add("web")
    await env.start()
    service = StateService(_projects_over(env))
    env.storage.down.clear()

    _, state = await service.current("web", "olivia")

    assert state.serial == 0
    web = env.health.of("web")
    assert (web.storage, web.reconciliation, web.error) == (StorageHealth.HEALTHY, Reconciliation.NOTHING_TO_DO, None)


async def test_no_execution_starts_while_an_in_flight_request_waits_on_storage_that_is_down(env: Degradable) -> None:
    crashed = await crash_mid_execution(env)
    waiting = await env.world.approved([vpc("net"), vpc("more", "10.1.0.0/16")])
    env.storage.down.add("web")
    await env.start()
    assert env.health.of("web").reconciliation is Reconciliation.FAILED
    calls_before = list(env.world.cloud.calls)

    with pytest.raises(InfraError) as caught:
        await env.world.execution.execute(waiting.id, "ed")

    assert caught.value.code == "STATE_004"
    assert env.world.cloud.calls == calls_before  # nothing was sent to AWS
    assert (await env.world.projects.get_plan(waiting.id)).status is PlanStatus.APPROVED
    assert (await env.world.projects.get_plan(crashed)).status is PlanStatus.EXECUTING

    env.storage.down.clear()
    with pytest.raises(InfraError) as stale:
        await env.world.execution.execute(waiting.id, "ed")
    # The storage answered: the interrupted execution was reconciled first, which moved the state
    # and superseded the plans made before (this one among them).
    assert stale.value.code == "PLAN_003"
    assert (await env.world.projects.get_plan(waiting.id)).status is PlanStatus.SUPERSEDED
    assert (await env.world.projects.get_plan(crashed)).status is PlanStatus.EXECUTED
    assert (await env.world.store.read_journal("web")).entries == []
    assert not [c for c in env.world.cloud.calls[len(calls_before) :] if c[0] == "create"]
    assert env.health.of("web").reconciliation is Reconciliation.RECONCILED


async def test_the_first_read_after_start_up_reconciles_a_pending_project_before_answering(env: Degradable) -> None:
    crashed = await crash_mid_execution(env)
    env.health.mark_pending(["web", "other"])  # start-up marked them; the background has not got there yet

    _, state = await StateService(_projects_over(env)).current("web", "olivia")

    assert [r.name for r in state.resources] == ["net"]
    assert (await env.world.projects.get_plan(crashed)).status is PlanStatus.EXECUTED
    assert env.health.of("web").reconciliation is Reconciliation.RECONCILED
    assert env.health.of("other").reconciliation is Reconciliation.PENDING


async def test_a_reconciliation_that_outlives_its_deadline_is_abandoned_and_tried_again_by_the_next_call(
    tmp_path: Path,
) -> None:
    env = Degradable(tmp_path, deadline=0.05)
    stuck = True

    async def reconcile(project_id: str) -> ReconcileReport | None:
        if stuck:
            await anyio.sleep_forever()
        return None

    env.health.bind(reconcile)
    await env.start()
    assert env.health.of("web").reconciliation is Reconciliation.TIMED_OUT

    with pytest.raises(InfraError) as caught:
        await env.health.ready("web")
    assert caught.value.code == "STATE_003"

    stuck = False
    await env.health.ready("web")
    assert env.health.of("web").reconciliation is Reconciliation.NOTHING_TO_DO


async def test_a_project_locked_by_another_holder_is_deferred_and_stays_usable(env: Degradable) -> None:
    await crash_mid_execution(env)
    await env.world.store.acquire_lock("web", owner="bob@elsewhere:1:x", operation="execute", lease_seconds=600)

    await env.start()

    assert env.health.of("web").reconciliation is Reconciliation.DEFERRED
    await env.health.ready("web")  # reading is not held up by another replica's execution


async def test_a_bug_in_reconciliation_is_recorded_and_never_escapes_the_background(env: Degradable) -> None:
    async def broken(project_id: str) -> ReconcileReport | None:
        raise RuntimeError("a bug")

    env.health.bind(broken)
    await env.start()

    web = env.health.of("web")
    assert web.reconciliation is Reconciliation.FAILED
    assert web.error is not None
    assert web.error.code == "INTERNAL_001"


def _projects_over(env: Degradable) -> ProjectService:
    return ProjectService(env.world.projects, env.states)
