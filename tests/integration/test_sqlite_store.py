"""SqliteProjectStore on a real file: migrations, projects, plans (compare-and-set) and audit."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from infra_mcp.domain.audit import AuditEvent
from infra_mcp.domain.plan import Plan, PlanStatus
from infra_mcp.domain.project import Member, Project, Role
from infra_mcp.errors import InfraError
from infra_mcp.stores.sqlite import MIGRATIONS, SqliteProjectStore


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    async with SqliteProjectStore(tmp_path / "db" / "infra.sqlite3") as opened:
        yield opened


def _project(pid: str = "web", owner: str = "alice") -> Project:
    return Project(id=pid, name=pid, owner=owner, members=[Member(user=owner, role=Role.OWNER)])


def _plan(pid: str = "web", plan_id: str = "plan-1") -> Plan:
    return Plan(id=plan_id, project_id=pid, author="alice", base_serial=0, base_lineage=None).with_fingerprint()


async def test_a_new_database_is_migrated_to_the_latest_schema(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    async with SqliteProjectStore(path):
        pass
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_reopening_keeps_data_and_does_not_migrate_twice(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    async with SqliteProjectStore(path) as first:
        await first.create_project(_project())
    async with SqliteProjectStore(path) as second:
        assert (await second.get_project("web")).owner == "alice"


async def test_a_database_from_a_newer_version_is_refused_with_state_004(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    with pytest.raises(InfraError) as caught:
        await SqliteProjectStore(path).open()
    assert caught.value.code == "STATE_004"


async def test_a_file_that_is_not_a_database_is_refused_as_corrupted_with_state_001(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InfraError) as caught:
        await SqliteProjectStore(path).open()
    assert caught.value.code == "STATE_001"


async def test_duplicate_project_ids_are_conflict_001(store: SqliteProjectStore) -> None:
    await store.create_project(_project())
    with pytest.raises(InfraError) as caught:
        await store.create_project(_project(owner="bob"))
    assert caught.value.code == "CONFLICT_001"
    assert (await store.get_project("web")).owner == "alice"


async def test_listing_by_member_returns_only_their_projects(store: SqliteProjectStore) -> None:
    await store.create_project(_project("a", "alice"))
    await store.create_project(_project("b", "bob"))
    assert [p.id for p in await store.list_projects(member="bob")] == ["b"]
    assert [p.id for p in await store.list_projects()] == ["a", "b"]


async def test_a_concurrent_project_update_loses_with_conflict_001(store: SqliteProjectStore) -> None:
    original = await store.create_project(_project())
    first = original.model_copy(update={"name": "one", "updated_at": original.updated_at + timedelta(seconds=1)})
    second = original.model_copy(update={"name": "two", "updated_at": original.updated_at + timedelta(seconds=2)})
    await store.update_project(first, expected_updated_at=original.updated_at)
    with pytest.raises(InfraError) as caught:
        await store.update_project(second, expected_updated_at=original.updated_at)
    assert caught.value.code == "CONFLICT_001"
    assert (await store.get_project("web")).name == "one"


async def test_plans_round_trip_and_list_newest_first(store: SqliteProjectStore) -> None:
    await store.create_project(_project())
    await store.save_plan(_plan(plan_id="plan-a"))
    await store.save_plan(_plan(plan_id="plan-b"))
    assert (await store.get_plan("plan-a")).fingerprint == _plan(plan_id="plan-a").fingerprint
    listed = await store.list_plans("web", statuses=[PlanStatus.PENDING])
    assert {p.id for p in listed} == {"plan-a", "plan-b"}


async def test_a_plan_for_an_unknown_project_is_resource_001(store: SqliteProjectStore) -> None:
    with pytest.raises(InfraError) as caught:
        await store.save_plan(_plan(pid="ghost"))
    assert caught.value.code == "RESOURCE_001"


async def test_two_racing_status_changes_exactly_one_wins(store: SqliteProjectStore) -> None:
    await store.create_project(_project())
    plan = await store.save_plan(_plan())
    results: list[str] = []

    async def move(to: PlanStatus) -> None:
        try:
            await store.update_plan(plan.model_copy(update={"status": to}), expected_status=PlanStatus.PENDING)
            results.append(to.value)
        except InfraError as exc:
            results.append(exc.code)

    async with anyio.create_task_group() as tg:
        tg.start_soon(move, PlanStatus.APPROVED)
        tg.start_soon(move, PlanStatus.REJECTED)
    assert sorted(results)[0] == "PLAN_003"
    assert (await store.get_plan(plan.id)).status.value in results


async def test_deleting_a_project_removes_its_plans(store: SqliteProjectStore) -> None:
    await store.create_project(_project())
    await store.save_plan(_plan())
    await store.delete_project("web")
    with pytest.raises(InfraError) as caught:
        await store.get_plan("plan-1")
    assert caught.value.code == "RESOURCE_001"


async def test_audit_events_list_newest_first_per_project(store: SqliteProjectStore) -> None:
    for action in ("a", "b", "c"):
        await store.append_audit(AuditEvent(project_id="web", actor="alice", action=action))
    await store.append_audit(AuditEvent(project_id="other", actor="bob", action="x"))
    assert [e.action for e in await store.list_audit("web")] == ["c", "b", "a"]


async def test_an_event_without_incarnation_gets_its_projects_and_the_list_filters_by_incarnation(
    store: SqliteProjectStore,
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


async def test_upgrading_gives_each_project_its_own_incarnation_and_the_data_it_already_had(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old_doc = '{{"id": "{pid}", "name": "{pid}", "owner": "alice", "members": [{{"user": "alice", "role": "owner"}}], "created_at": "2026-01-01T00:00:00Z"}}'
    with sqlite3.connect(path) as db:  # a database written before incarnations (schema version 1)
        db.executescript(MIGRATIONS[0] + "PRAGMA user_version = 1;")
        for pid in ("web", "api"):
            db.execute(
                "INSERT INTO projects (id, doc, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (pid, old_doc.format(pid=pid), "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
            )
        db.execute(
            "INSERT INTO audit (id, project_id, at, doc) VALUES (?, ?, ?, ?)",
            (
                "e1",
                "web",
                "2026-01-02T00:00:00Z",
                AuditEvent(id="e1", project_id="web", actor="alice", action="x").model_dump_json(),
            ),
        )

    async with SqliteProjectStore(path) as store:
        web, api = await store.get_project("web"), await store.get_project("api")
        events = await store.list_audit("web", incarnation=web.incarnation, unmarked_since=web.created_at)

    assert web.incarnation != api.incarnation
    assert str(uuid.UUID(web.incarnation)) == web.incarnation
    assert uuid.UUID(web.incarnation).version == 4
    assert web.adopts_unmarked_state
    assert api.adopts_unmarked_state
    assert [e.id for e in events] == ["e1"]
    assert (
        Project(id="new", name="new", owner="bob", members=[Member(user="bob", role=Role.OWNER)]).adopts_unmarked_state
        is False
    )


async def test_the_last_drift_result_replaces_the_one_before_and_goes_with_its_project(
    store: SqliteProjectStore,
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
