"""The ProjectStore contract, asserted the same way on SQLite and on PostgreSQL.

Every test runs once per backend. ``open_store()`` opens another store on the same database: for
PostgreSQL that is what a second replica is (its own connection pool, nothing shared in memory); for
SQLite, a second process on the same file. The races below run several such stores against each other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from infra_mcp.domain.audit import GENESIS, AuditEvent, check_chain
from infra_mcp.domain.integrity import AuditChain
from infra_mcp.domain.plan import Plan, PlanStatus
from infra_mcp.domain.project import Member, Project, Role
from infra_mcp.errors import InfraError
from infra_mcp.stores.postgres import PostgresProjectStore
from infra_mcp.stores.project_factory import ProjectDatabase
from infra_mcp.stores.sqlite import SqliteProjectStore
from tests.postgres_support import fresh_schema

CHAIN = AuditChain(b"contract test server key, 32 B!!")
OpenStore = Callable[[], AbstractAsyncContextManager[ProjectDatabase]]


@pytest.fixture(params=["sqlite", "postgresql"])
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenStore]:
    """A factory of stores on one fresh database of the backend under test."""
    if request.param == "sqlite":
        path = tmp_path / "db" / "infra.sqlite3"

        @asynccontextmanager
        async def sqlite() -> AsyncIterator[ProjectDatabase]:
            async with SqliteProjectStore(path, chain=CHAIN) as store:
                yield store

        yield sqlite
        return
    async with fresh_schema() as url:

        @asynccontextmanager
        async def postgres() -> AsyncIterator[ProjectDatabase]:
            async with PostgresProjectStore(url, chain=CHAIN, pool_size=4) as store:
                yield store

        yield postgres


@pytest.fixture
async def store(open_store: OpenStore) -> AsyncIterator[ProjectDatabase]:
    async with open_store() as opened:
        yield opened


def _project(pid: str = "web", owner: str = "alice") -> Project:
    return Project(id=pid, name=pid, owner=owner, members=[Member(user=owner, role=Role.OWNER)])


def _plan(pid: str = "web", plan_id: str = "plan-1") -> Plan:
    return Plan(id=plan_id, project_id=pid, author="alice", base_serial=0, base_lineage=None).with_fingerprint()


def _event(plan: Plan, action: str, actor: str = "alice") -> AuditEvent:
    return AuditEvent(project_id=plan.project_id, actor=actor, action=action, target=plan.id)


async def _move(store: ProjectDatabase, plan: Plan, to: PlanStatus, *, expected: PlanStatus, actor: str) -> str:
    """Try one status change with its audit line; the outcome as a word (the new status or the error code)."""
    try:
        await store.update_plan(
            plan.model_copy(update={"status": to}),
            expected_status=expected,
            audit=_event(plan, f"plan.{to.value}", actor),
        )
    except InfraError as exc:
        return exc.code
    return to.value


# --------------------------------------------------------------------------- projects


async def test_reopening_keeps_data(open_store: OpenStore) -> None:
    async with open_store() as first:
        await first.create_project(_project())
    async with open_store() as second:
        assert (await second.get_project("web")).owner == "alice"


async def test_duplicate_project_ids_are_conflict_001(store: ProjectDatabase) -> None:
    await store.create_project(_project())
    with pytest.raises(InfraError) as caught:
        await store.create_project(_project(owner="bob"))
    assert caught.value.code == "CONFLICT_001"
    assert (await store.get_project("web")).owner == "alice"


async def test_an_unknown_project_is_resource_001_to_get_update_and_delete(store: ProjectDatabase) -> None:
    ghost = _project("ghost")
    for attempt in (
        store.get_project("ghost"),
        store.delete_project("ghost"),
        store.update_project(ghost, expected_updated_at=ghost.updated_at),
    ):
        with pytest.raises(InfraError) as caught:
            await attempt
        assert caught.value.code == "RESOURCE_001"


async def test_listing_by_member_returns_only_their_projects(store: ProjectDatabase) -> None:
    await store.create_project(_project("a", "alice"))
    await store.create_project(_project("b", "bob"))
    assert [p.id for p in await store.list_projects(member="bob")] == ["b"]
    assert [p.id for p in await store.list_projects()] == ["a", "b"]


async def test_membership_changes_are_what_member_listing_follows(store: ProjectDatabase) -> None:
    original = await store.create_project(_project("a", "alice"))
    joined = original.model_copy(
        update={
            "members": [*original.members, Member(user="carol", role=Role.VIEWER)],
            "updated_at": original.updated_at + timedelta(seconds=1),
        }
    )
    await store.update_project(joined, expected_updated_at=original.updated_at)
    assert [p.id for p in await store.list_projects(member="carol")] == ["a"]


async def test_a_concurrent_project_update_loses_with_conflict_001(store: ProjectDatabase) -> None:
    original = await store.create_project(_project())
    first = original.model_copy(update={"name": "one", "updated_at": original.updated_at + timedelta(seconds=1)})
    second = original.model_copy(update={"name": "two", "updated_at": original.updated_at + timedelta(seconds=2)})
    await store.update_project(first, expected_updated_at=original.updated_at)
    with pytest.raises(InfraError) as caught:
        await store.update_project(second, expected_updated_at=original.updated_at)
    assert caught.value.code == "CONFLICT_001"
    assert (await store.get_project("web")).name == "one"


async def test_deleting_a_project_removes_its_plans(store: ProjectDatabase) -> None:
    await store.create_project(_project())
    await store.save_plan(_plan())
    await store.delete_project("web")
    with pytest.raises(InfraError) as caught:
        await store.get_plan("plan-1")
    assert caught.value.code == "RESOURCE_001"


# --------------------------------------------------------------------------- plans


async def test_plans_round_trip_and_list_newest_first(store: ProjectDatabase) -> None:
    await store.create_project(_project())
    older = _plan(plan_id="plan-a")
    newer = _plan(plan_id="plan-b").model_copy(update={"created_at": older.created_at + timedelta(seconds=1)})
    await store.save_plan(older)
    await store.save_plan(newer)
    assert (await store.get_plan("plan-a")).fingerprint == older.fingerprint
    assert [p.id for p in await store.list_plans("web", statuses=[PlanStatus.PENDING])] == ["plan-b", "plan-a"]
    assert [p.id for p in await store.list_plans("web", limit=1)] == ["plan-b"]
    assert await store.list_plans("web", statuses=[PlanStatus.APPROVED]) == []


async def test_a_plan_for_an_unknown_project_is_resource_001(store: ProjectDatabase) -> None:
    with pytest.raises(InfraError) as caught:
        await store.save_plan(_plan(pid="ghost"))
    assert caught.value.code == "RESOURCE_001"


async def test_saving_a_plan_id_twice_is_conflict_001_and_keeps_the_first(store: ProjectDatabase) -> None:
    await store.create_project(_project())
    await store.save_plan(_plan())
    with pytest.raises(InfraError) as caught:
        await store.save_plan(_plan().model_copy(update={"description": "second"}))
    assert caught.value.code == "CONFLICT_001"
    assert (await store.get_plan("plan-1")).description == ""


async def test_updating_a_plan_that_does_not_exist_is_resource_001(store: ProjectDatabase) -> None:
    await store.create_project(_project())
    with pytest.raises(InfraError) as caught:
        await store.update_plan(_plan(), expected_status=PlanStatus.PENDING)
    assert caught.value.code == "RESOURCE_001"


async def test_two_racing_status_changes_exactly_one_wins(store: ProjectDatabase) -> None:
    await store.create_project(_project())
    plan = await store.save_plan(_plan())
    results: list[str] = []

    async def move(to: PlanStatus) -> None:
        results.append(await _move(store, plan, to, expected=PlanStatus.PENDING, actor="alice"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(move, PlanStatus.APPROVED)
        tg.start_soon(move, PlanStatus.REJECTED)
    assert sorted(results)[0] == "PLAN_003"
    assert (await store.get_plan(plan.id)).status.value in results


@pytest.mark.parametrize(
    ("start", "moves"),
    [
        pytest.param(PlanStatus.PENDING, [PlanStatus.APPROVED] * 3, id="approve"),
        pytest.param(PlanStatus.APPROVED, [PlanStatus.EXECUTING] * 3, id="execute"),
        pytest.param(
            PlanStatus.APPROVED,
            [PlanStatus.EXECUTING, PlanStatus.SUPERSEDED, PlanStatus.EXECUTING],
            id="execute-or-supersede",
        ),
    ],
)
async def test_replicas_racing_on_one_plan_move_it_exactly_once_and_record_it_once(
    open_store: OpenStore, start: PlanStatus, moves: list[PlanStatus]
) -> None:
    """Three stores (three replicas) try the same transition on each of 10 plans at once."""
    async with open_store() as one, open_store() as two, open_store() as three:
        replicas = [one, two, three]
        await one.create_project(_project())
        plans = [
            await one.save_plan(_plan(plan_id=f"plan-{n}").model_copy(update={"status": start})) for n in range(10)
        ]
        outcomes: dict[str, list[str]] = {plan.id: [] for plan in plans}

        async def attempt(replica: ProjectDatabase, plan: Plan, to: PlanStatus, actor: str) -> None:
            outcomes[plan.id].append(await _move(replica, plan, to, expected=start, actor=actor))

        async with anyio.create_task_group() as tg:
            for plan in plans:
                for index, (replica, to) in enumerate(zip(replicas, moves, strict=True)):
                    tg.start_soon(attempt, replica, plan, to, f"replica-{index}")

        trail = await one.audit_trail("web")
        for plan in plans:
            won = [o for o in outcomes[plan.id] if o != "PLAN_003"]
            assert len(won) == 1, outcomes[plan.id]
            assert outcomes[plan.id].count("PLAN_003") == 2
            assert (await two.get_plan(plan.id)).status.value == won[0]
            # Only the winner's audit line was written: a loser's rolled back with its update.
            assert [e.action for e in trail if e.target == plan.id] == [f"plan.{won[0]}"]


async def test_saving_a_plan_and_its_audit_line_is_both_or_neither(store: ProjectDatabase) -> None:
    await store.create_project(_project())
    first = await store.save_plan(_plan(plan_id="plan-1"), audit=_event(_plan(), "plan.create"))
    taken = (await store.audit_trail("web"))[0].id
    clash = _event(_plan(plan_id="plan-2"), "plan.create").model_copy(update={"id": taken})

    with pytest.raises(InfraError) as caught:
        await store.save_plan(_plan(plan_id="plan-2"), audit=clash)

    assert caught.value.code == "CONFLICT_001"
    assert [p.id for p in await store.list_plans("web")] == [first.id]
    assert len(await store.audit_trail("web")) == 1


async def test_a_status_change_and_its_audit_line_are_both_or_neither(store: ProjectDatabase) -> None:
    await store.create_project(_project())
    plan = await store.save_plan(_plan(), audit=_event(_plan(), "plan.create"))
    taken = (await store.audit_trail("web"))[0].id

    with pytest.raises(InfraError):
        await store.update_plan(
            plan.model_copy(update={"status": PlanStatus.APPROVED}),
            expected_status=PlanStatus.PENDING,
            audit=_event(plan, "plan.approve").model_copy(update={"id": taken}),
        )

    assert (await store.get_plan(plan.id)).status is PlanStatus.PENDING
    assert [e.action for e in await store.audit_trail("web")] == ["plan.create"]


# --------------------------------------------------------------------------- audit


async def test_audit_events_list_newest_first_per_project(store: ProjectDatabase) -> None:
    for action in ("a", "b", "c"):
        await store.append_audit(AuditEvent(project_id="web", actor="alice", action=action))
    await store.append_audit(AuditEvent(project_id="other", actor="bob", action="x"))
    assert [e.action for e in await store.list_audit("web")] == ["c", "b", "a"]
    assert [e.action for e in await store.audit_trail("web")] == ["a", "b", "c"]


async def test_audit_pages_follow_each_other_and_an_unknown_anchor_is_resource_001(store: ProjectDatabase) -> None:
    for n in range(5):
        await store.append_audit(AuditEvent(project_id="web", actor="alice", action=f"a{n}"))
    first = await store.list_audit("web", limit=2)
    second = await store.list_audit("web", limit=2, before=first[-1].id)
    assert [e.action for e in first + second] == ["a4", "a3", "a2", "a1"]
    other = AuditEvent(project_id="other", actor="bob", action="x")
    await store.append_audit(other)
    with pytest.raises(InfraError) as caught:
        await store.list_audit("web", before=other.id)  # another project's event is no anchor here
    assert caught.value.code == "RESOURCE_001"


async def test_an_event_without_incarnation_gets_its_projects_and_the_list_filters_by_incarnation(
    store: ProjectDatabase,
) -> None:
    first = await store.create_project(_project())
    await store.append_audit(AuditEvent(project_id="web", actor="alice", action="project.update"))
    await store.delete_project("web")
    second = await store.create_project(_project(owner="mallory"))
    await store.append_audit(AuditEvent(project_id="web", actor="mallory", action="project.update"))

    mine = await store.list_audit("web", incarnation=second.incarnation)
    theirs = await store.list_audit("web", incarnation=first.incarnation)

    assert [(e.actor, e.incarnation) for e in mine] == [("mallory", second.incarnation)]
    assert [(e.actor, e.incarnation) for e in theirs] == [("alice", first.incarnation)]


async def test_unmarked_events_since_a_moment_are_listed_with_the_incarnation(store: ProjectDatabase) -> None:
    project = await store.create_project(_project())
    old = AuditEvent(project_id="web", actor="alice", action="old", at=project.created_at - timedelta(days=1))
    new = AuditEvent(project_id="web", actor="alice", action="new", at=project.created_at + timedelta(seconds=1))
    await store.delete_project("web")  # so the appends below are not stamped with its incarnation
    for event in (old, new):  # written without an incarnation, as before incarnations existed
        await store.append_audit(event)
    listed = await store.list_audit("web", incarnation="someone-else", unmarked_since=project.created_at)
    assert [e.action for e in listed] == ["new"]


async def test_the_audit_chain_stays_whole_with_several_replicas_writing_at_once(open_store: OpenStore) -> None:
    """Three replicas append and change plan statuses on one project at the same time: the chain links
    every entry to the one written before it, with no fork (two entries after the same predecessor)."""
    async with open_store() as one, open_store() as two, open_store() as three:
        await one.create_project(_project())
        plans = [await one.save_plan(_plan(plan_id=f"plan-{n}")) for n in range(6)]

        async def write(replica: ProjectDatabase, name: str) -> None:
            for n in range(8):
                await replica.append_audit(AuditEvent(project_id="web", actor=name, action=f"note-{n}"))
            for plan in plans:
                await _move(replica, plan, PlanStatus.APPROVED, expected=PlanStatus.PENDING, actor=name)

        async with anyio.create_task_group() as tg:
            for name, replica in (("one", one), ("two", two), ("three", three)):
                tg.start_soon(write, replica, name)

        trail = await three.audit_trail("web")
    assert len(trail) == 3 * 8 + len(plans)  # each plan approved once, whoever won
    check = check_chain("web", trail, CHAIN.link)
    assert check.intact, check
    predecessors = [e.prev_hash for e in trail]
    assert predecessors[0] == GENESIS
    assert len(set(predecessors)) == len(predecessors)


async def test_the_last_drift_result_replaces_the_one_before_and_goes_with_its_project(
    store: ProjectDatabase,
) -> None:
    from infra_mcp.domain.common import utcnow
    from infra_mcp.domain.drift import DriftReport, DriftStatus, ResourceDrift

    await store.create_project(_project())
    assert await store.get_drift_report("web") is None
    first = DriftReport(project_id="web", checked_at=utcnow(), checked_by="alice", serial=1)
    gone = ResourceDrift(name="b", type="AWS::S3::Bucket", id="b", region="us-east-1", status=DriftStatus.DELETED)
    second = first.model_copy(update={"serial": 2, "resources": [gone]})
    await store.save_drift_report(first)
    await store.save_drift_report(second)
    assert await store.get_drift_report("web") == second
    with pytest.raises(InfraError) as caught:
        await store.save_drift_report(first.model_copy(update={"project_id": "ghost"}))
    assert caught.value.code == "RESOURCE_001"
    await store.delete_project("web")
    await store.create_project(_project())
    assert await store.get_drift_report("web") is None  # a new project of the same id starts with none
