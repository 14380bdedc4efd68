"""No path silently forgets live resources, and no project adopts state or audit it did not write."""

from __future__ import annotations

import pytest

from infra_mcp.domain.state import (
    Journal,
    JournalEntry,
    StateFile,
    StateMetadata,
    StateOwner,
    StateResource,
    dropped_resources,
    possibly_live,
)
from infra_mcp.errors import InfraError
from infra_mcp.services.projects import ProjectService
from infra_mcp.services.state import StateService
from tests.fakes.stores import FakeProjectStore, FakeStateStores


def bucket(physical: str = "logs-1", name: str = "logs") -> StateResource:
    return StateResource(id=physical, name=name, type="AWS::S3::Bucket")


def versions(*contents: tuple[list[StateResource], str | None, list[str]]) -> list[StateFile]:
    return [
        StateFile(
            project_id="web",
            serial=n,
            lineage="l",
            metadata=StateMetadata(change_plan_id=plan, forgotten=forgotten),
            resources=resources,
        )
        for n, (resources, plan, forgotten) in enumerate(contents, start=1)
    ]


# ----------------------------------------------------------------------------- pure rules


def test_a_resource_is_dropped_when_the_target_lacks_its_physical_id_even_under_the_same_name() -> None:
    assert dropped_resources([bucket("logs-2")], [bucket("logs-1")]) == [bucket("logs-2")]
    assert dropped_resources([bucket("logs-1")], [bucket("logs-1")]) == []


def test_a_resource_a_plan_deleted_is_not_live() -> None:
    assert possibly_live(versions(([bucket()], "plan-1", []), ([], "plan-2", []))) == []


def test_a_resource_dropped_by_a_restore_may_still_be_live() -> None:
    assert possibly_live(versions(([bucket()], "plan-1", []), ([], None, []))) == [bucket()]


def test_a_resource_forgotten_on_purpose_is_not_reported_again() -> None:
    assert possibly_live(versions(([bucket()], "plan-1", []), ([], None, ["logs"]))) == []


def test_a_dropped_resource_brought_back_and_then_deleted_by_a_plan_is_not_live() -> None:
    history = versions(([bucket()], "plan-1", []), ([], None, []), ([bucket()], None, []), ([], "plan-2", []))
    assert possibly_live(history) == []


def test_an_owner_owns_its_incarnation_and_unmarked_state_only_when_it_adopted_it() -> None:
    owner = StateOwner(project_id="web", incarnation="a")
    assert owner.owns("a")
    assert not owner.owns("b")
    assert not owner.owns(None)
    assert StateOwner(project_id="web", incarnation="a", adopts_unmarked=True).owns(None)


# ----------------------------------------------------------------------------- services


@pytest.fixture
def projects(store: FakeProjectStore, states: FakeStateStores) -> ProjectService:
    return ProjectService(store, states)


async def _code(coro: object) -> InfraError:
    try:
        await coro  # type: ignore[misc]
    except InfraError as exc:
        return exc
    raise AssertionError("expected an InfraError")


async def _web_with_history(projects: ProjectService, states: FakeStateStores) -> StateFile:
    """Project web: v1 empty, v2 a bucket created by plan-1."""
    project = await projects.create_project("web", name=None, description="", user="alice")
    scope = states.for_project(project)
    first = await scope.write(StateFile.empty("web").next_version([], user="alice", description="empty"))
    return await scope.write(first.next_version([bucket()], user="alice", description="apply", plan_id="plan-1"))


async def test_restoring_a_version_that_lacks_current_resources_is_refused_without_forget(
    projects: ProjectService, states: FakeStateStores, store: FakeProjectStore
) -> None:
    await _web_with_history(projects, states)

    refused = await _code(StateService(projects).restore("web", "alice", 1))

    assert refused.code == "CONFLICT_001"
    assert refused.details["resources"] == [{"name": "logs", "type": "AWS::S3::Bucket", "id": "logs-1"}]
    assert (await states.store.read("web")).serial == 2  # type: ignore[union-attr]


async def test_restoring_with_forget_lists_and_audits_the_forgotten_resources_and_delete_then_works(
    projects: ProjectService, states: FakeStateStores, store: FakeProjectStore
) -> None:
    await _web_with_history(projects, states)

    written, forgotten = await StateService(projects).restore("web", "alice", 1, forget_resources=True)

    assert forgotten == [bucket()]
    assert written.metadata.forgotten == ["logs"]
    restore_event = store.audit[-1]
    assert (restore_event.action, restore_event.details["forgotten_resources"][0]["id"]) == ("state.restore", "logs-1")
    await projects.delete_project("web", user="alice")


async def test_only_an_owner_may_forget_resources(projects: ProjectService, states: FakeStateStores) -> None:
    await _web_with_history(projects, states)
    await projects.update_project(
        "web", user="alice", members=[{"user": "alice", "role": "owner"}, {"user": "ed", "role": "editor"}]
    )
    assert (await _code(StateService(projects).restore("web", "ed", 1, forget_resources=True))).code == "AUTH_001"


async def test_delete_is_refused_when_history_shows_resources_a_restore_dropped(
    projects: ProjectService, states: FakeStateStores, store: FakeProjectStore
) -> None:
    current = await _web_with_history(projects, states)
    project = await store.get_project("web")
    # What a restore did before it needed forget_resources: the bucket left the record, not AWS.
    await states.for_project(project).write(current.next_version([], user="alice", description="Restored state 1"))

    refused = await _code(projects.delete_project("web", user="alice"))

    assert refused.code == "CONFLICT_001"
    assert refused.details["resources"] == ["logs"]
    assert "web" in store.projects
    assert states.store.versions["web"]


async def test_delete_is_refused_while_the_journal_holds_requests_in_flight(
    projects: ProjectService, states: FakeStateStores, store: FakeProjectStore
) -> None:
    project = await projects.create_project("web", name=None, description="", user="alice")
    entry = JournalEntry(
        plan_id="plan-1", name="logs", type="AWS::S3::Bucket", region="us-east-1", operation="CREATE", client_token="c"
    )
    await states.for_project(project).write_journal(Journal(project_id="web", entries=[entry]))

    refused = await _code(projects.delete_project("web", user="alice"))

    assert refused.code == "CONFLICT_001"
    assert refused.details["plan_ids"] == ["plan-1"]
    assert "web" in store.projects


async def test_delete_is_refused_while_an_execution_holds_the_state_lock(
    projects: ProjectService, states: FakeStateStores, store: FakeProjectStore
) -> None:
    project = await projects.create_project("web", name=None, description="", user="alice")
    await states.for_project(project).acquire_lock("web", owner="ed", operation="execute_plan", lease_seconds=60)

    assert (await _code(projects.delete_project("web", user="alice"))).code == "STATE_003"
    assert "web" in store.projects


async def test_a_recreated_project_refuses_the_state_the_previous_one_left(
    projects: ProjectService, states: FakeStateStores, store: FakeProjectStore
) -> None:
    old = await projects.create_project("web", name=None, description="", user="alice")
    await states.for_project(old).write(StateFile.empty("web").next_version([bucket()], user="alice", description="x"))
    del store.projects["web"]  # the database lost the row (edited, restored from an old backup, ...)

    refused = await _code(projects.create_project("web", name=None, description="", user="mallory"))

    assert refused.code == "CONFLICT_001"
    assert refused.details["found"] == {
        "serial": 1,
        "resource_count": 1,
        "lineage": (await states.store.read("web")).lineage,  # type: ignore[union-attr]
        "incarnation": old.incarnation,
    }
    assert "web" not in store.projects


async def test_a_recreated_project_sees_only_its_own_audit(projects: ProjectService, store: FakeProjectStore) -> None:
    await projects.create_project("web", name=None, description="first owner's", user="alice")
    await projects.update_project("web", user="alice", description="secret plans")
    await projects.delete_project("web", user="alice")
    again = await projects.create_project("web", name=None, description="", user="mallory")

    events = await projects.audit("web", "mallory")

    assert [(e.actor, e.action) for e in events] == [("mallory", "project.create")]
    assert {e.incarnation for e in events} == {again.incarnation}
