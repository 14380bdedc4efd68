"""Project ids, roles and permissions: the rules that keep projects apart."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infra_mcp.domain.common import validate_project_id
from infra_mcp.domain.project import Member, Permission, Project, Role
from infra_mcp.errors import AccessDenied, NotFound, ValidationFailed


@pytest.mark.parametrize("good", ["a", "web-app", "a1", "x" * 63, "0-9"])
def test_safe_project_ids_are_accepted(good: str) -> None:
    assert validate_project_id(good) == good


@pytest.mark.parametrize(
    "bad",
    ["", "x" * 64, "Web", "a/b", "..", "../etc", "a..b", "a b", "a\nb", "a\x00b", "-a", "a-", "a_b", "é", "a.b"],
)
def test_unsafe_project_ids_are_refused_with_validation_001(bad: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_project_id(bad)
    assert caught.value.code == "VALIDATION_001"


def _project(**members: Role) -> Project:
    return Project(
        id="p",
        name="p",
        owner="olivia",
        members=[Member(user="olivia", role=Role.OWNER)] + [Member(user=u, role=r) for u, r in members.items()],
    )


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.VIEWER, {Permission.READ}),
        (Role.EDITOR, {Permission.READ, Permission.PLAN, Permission.EXECUTE}),
        (Role.APPROVER, {Permission.READ, Permission.PLAN, Permission.EXECUTE, Permission.APPROVE}),
        (Role.OWNER, set(Permission)),
    ],
)
def test_each_role_grants_exactly_its_permissions(role: Role, allowed: set[Permission]) -> None:
    project = _project(uma=role) if role is not Role.OWNER else _project()
    user = "uma" if role is not Role.OWNER else "olivia"
    for permission in Permission:
        assert project.can(user, permission) is (permission in allowed)


def test_a_role_without_the_permission_gets_auth_001_naming_the_roles_that_would_do() -> None:
    with pytest.raises(AccessDenied) as caught:
        _project(vic=Role.VIEWER).require("vic", Permission.PLAN)
    assert caught.value.code == "AUTH_001"
    assert caught.value.details["role"] == "viewer"


def test_a_non_member_has_no_permission_at_all_and_is_told_the_project_is_not_there() -> None:
    project = _project()
    assert not any(project.can("mallory", p) for p in Permission)
    with pytest.raises(NotFound) as caught:
        project.require("mallory", Permission.READ)
    assert caught.value.code == "RESOURCE_001"


def test_an_unknown_role_is_refused() -> None:
    with pytest.raises(ValidationError):
        Member(user="x", role="superuser")  # type: ignore[arg-type]


def test_the_owner_must_stay_an_owner_member() -> None:
    with pytest.raises(ValidationError):
        Project(id="p", name="p", owner="olivia", members=[Member(user="olivia", role=Role.VIEWER)])
