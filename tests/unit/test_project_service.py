"""ProjectService over in-memory fakes: who may do what, and bad input changes nothing."""

from __future__ import annotations

import pytest

from infra_mcp.domain.state import StateFile, StateResource
from infra_mcp.errors import InfraError
from infra_mcp.services.projects import ProjectService
from tests.fakes.stores import FakeProjectStore, FakeStateStores


@pytest.fixture
def service(store: FakeProjectStore, states: FakeStateStores) -> ProjectService:
    return ProjectService(store, states)


async def _codes(coro: object) -> str:
    try:
        await coro  # type: ignore[misc]
    except InfraError as exc:
        return exc.code
    raise AssertionError("expected an InfraError")


async def test_the_creator_becomes_the_owner_and_an_audit_event_is_written(
    service: ProjectService, store: FakeProjectStore
) -> None:
    project = await service.create_project("web", name=None, description="d", user="alice")
    assert project.owner == "alice"
    assert project.role_of("alice") == "owner"
    assert project.name == "web"
    assert [e.action for e in store.audit] == ["project.create"]


async def test_a_duplicate_id_is_conflict_001_and_the_first_project_is_untouched(
    service: ProjectService, store: FakeProjectStore
) -> None:
    await service.create_project("web", name="First", description="", user="alice")
    assert await _codes(service.create_project("web", name="Second", description="", user="bob")) == "CONFLICT_001"
    assert store.projects["web"].name == "First"


@pytest.mark.parametrize("bad", ["", "Web", "../x", "a/b", "a b", "x" * 64])
async def test_bad_ids_are_refused_and_nothing_is_stored(
    service: ProjectService, store: FakeProjectStore, bad: str
) -> None:
    assert await _codes(service.create_project(bad, name=None, description="", user="alice")) == "VALIDATION_001"
    assert store.projects == {}
    assert store.audit == []


async def test_users_see_only_projects_they_belong_to(service: ProjectService) -> None:
    await service.create_project("alices", name=None, description="", user="alice")
    await service.create_project("bobs", name=None, description="", user="bob")
    assert [p.id for p in await service.list_projects("alice")] == ["alices"]
    # A non-member learns nothing about existence: the same answer as for a project that is not there.
    assert await _codes(service.get_project("bobs", "alice")) == "RESOURCE_001"


async def test_an_unknown_project_is_resource_001(service: ProjectService) -> None:
    assert await _codes(service.get_project("nope", "alice")) == "RESOURCE_001"


async def test_owners_can_add_members_and_their_roles_take_effect(service: ProjectService) -> None:
    await service.create_project("web", name=None, description="", user="alice")
    await service.update_project(
        "web", user="alice", members=[{"user": "alice", "role": "owner"}, {"user": "vera", "role": "viewer"}]
    )
    assert (await service.get_project("web", "vera")).role_of("vera") == "viewer"
    assert await _codes(service.update_project("web", user="vera", name="mine")) == "AUTH_001"


async def test_an_unknown_role_is_refused_and_members_are_unchanged(
    service: ProjectService, store: FakeProjectStore
) -> None:
    await service.create_project("web", name=None, description="", user="alice")
    code = await _codes(
        service.update_project(
            "web", user="alice", members=[{"user": "alice", "role": "owner"}, {"user": "eve", "role": "root"}]
        )
    )
    assert code == "VALIDATION_001"
    assert [m.user for m in store.projects["web"].members] == ["alice"]


async def test_removing_the_owner_is_refused(service: ProjectService) -> None:
    await service.create_project("web", name=None, description="", user="alice")
    code = await _codes(service.update_project("web", user="alice", members=[{"user": "bob", "role": "owner"}]))
    assert code == "VALIDATION_001"


async def test_settings_are_merged_and_opting_out_of_human_confirmation_is_audited(
    service: ProjectService, store: FakeProjectStore
) -> None:
    await service.create_project("web", name=None, description="", user="alice")
    updated = await service.update_project(
        "web", user="alice", settings={"approval": {"require_human_confirmation": False}}
    )
    assert updated.settings.approval.require_human_confirmation is False
    assert updated.settings.approval.approval_ttl_minutes == 60  # untouched keys keep their values
    assert "approval.human_confirmation_disabled" in [e.action for e in store.audit]


async def test_bad_settings_are_refused_with_every_problem_listed(service: ProjectService) -> None:
    await service.create_project("web", name=None, description="", user="alice")
    with pytest.raises(InfraError) as caught:
        await service.update_project(
            "web", user="alice", settings={"default_region": "mars", "approval": {"approval_ttl_minutes": 0}}
        )
    assert caught.value.code == "VALIDATION_001"
    assert caught.value.details["total"] == 2


async def test_delete_is_refused_while_the_state_holds_resources(
    service: ProjectService, states: FakeStateStores, store: FakeProjectStore
) -> None:
    project = await service.create_project("web", name=None, description="", user="alice")
    state = StateFile.empty("web")
    await states.for_project(project).write(
        state.next_version([StateResource(id="vpc-1", name="vpc", type="AWS::EC2::VPC")], user="alice", description="x")
    )
    assert await _codes(service.delete_project("web", user="alice")) == "CONFLICT_001"
    assert "web" in store.projects


async def test_only_owners_may_delete_and_deleting_removes_the_state(
    service: ProjectService, states: FakeStateStores, store: FakeProjectStore
) -> None:
    project = await service.create_project("web", name=None, description="", user="alice")
    await service.update_project(
        "web", user="alice", members=[{"user": "alice", "role": "owner"}, {"user": "ed", "role": "editor"}]
    )
    assert await _codes(service.delete_project("web", user="ed")) == "AUTH_001"
    await states.for_project(project).write(StateFile.empty("web").next_version([], user="alice", description="empty"))
    await service.delete_project("web", user="alice")
    assert "web" not in store.projects
    assert await states.store.read("web") is None


@pytest.mark.parametrize("user", ["rule:auto-approval", "system:reconcile"])
async def test_a_project_cannot_be_created_by_an_internal_actor_name(
    service: ProjectService, store: FakeProjectStore, user: str
) -> None:
    assert await _codes(service.create_project("web", name=None, description="", user=user)) == "VALIDATION_001"
    assert await _codes(service.get_project("web", "alice")) == "RESOURCE_001"
