"""Non-members cannot tell which projects or plans exist; internal actor names cannot be taken by users."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from infra_mcp.errors import ValidationFailed
from infra_mcp.server.app import build_server
from infra_mcp.settings import Settings
from tests.e2e.conftest import ClientFactory, call_error, call_ok
from tests.e2e.loop_helpers import make_plan, vpc_stack

MISSING_PLAN = "plan-0123456789ab"

PROJECT_TOOLS: list[tuple[str, dict[str, Any]]] = [
    ("get_project", {}),
    ("update_project", {"name": "mine"}),
    ("delete_project", {}),
    ("list_resources", {}),
    ("get_resource", {"resource": "net-vpc"}),
    ("get_state_history", {}),
    ("restore_state", {"version": 1}),
    ("plan_changes", {"desired_state": {"resources": []}}),
    ("plan_resource", {"action": "create", "resource": "b", "type": "AWS::S3::Bucket"}),
    ("plan_resource", {"action": "update", "resource": "net-vpc", "properties": {}}),
    ("plan_resource", {"action": "delete", "resource": "net-vpc"}),
    ("plan_changes", {"to_version": 1}),
    ("list_plans", {}),
    ("detect_drift", {}),
    ("accept_drift", {"names": ["net-vpc"]}),
    ("discover_resources", {"types": ["AWS::S3::Bucket"]}),
    ("import_resources", {"resources": [{"name": "b", "type": "AWS::S3::Bucket", "identifier": "b"}]}),
]
PROJECT_RESOURCES = ["", "/state", "/state/history", "/state/history/1", "/audit", "/audit/verify"]
PLAN_TOOLS: list[tuple[str, dict[str, Any]]] = [
    ("get_plan", {}),
    ("approve_plan", {}),
    ("reject_plan", {}),
    ("execute_plan", {}),
]


def _same_answer(error: dict[str, Any], name: str) -> tuple[str, str, str]:
    """What a caller learns from an error, with the id it asked about written out of it."""
    return error["code"], error["message"].replace(name, "<id>"), json.dumps(error["details"]).replace(name, "<id>")


async def _resource_error(client: Client, uri: str) -> tuple[dict[str, Any], int]:
    with pytest.raises(MCPError) as caught:
        await client.read_resource(uri)
    return json.loads(caught.value.error.message), caught.value.error.code


async def test_a_non_member_gets_the_same_answer_for_a_project_that_exists_and_one_that_does_not(
    connect: ClientFactory,
) -> None:
    async with connect("alice") as alice:
        await call_ok(alice, "create_project", {"project_id": "alices"})
    async with connect("mallory") as mallory:
        for tool, args in PROJECT_TOOLS:
            existing = await call_error(mallory, tool, {"project_id": "alices", **args})
            missing = await call_error(mallory, tool, {"project_id": "nobodys", **args})
            assert existing["code"] == "RESOURCE_001", tool
            assert _same_answer(existing, "alices") == _same_answer(missing, "nobodys"), tool
        for suffix in PROJECT_RESOURCES:
            existing, existing_rpc = await _resource_error(mallory, f"infra://projects/alices{suffix}")
            missing, missing_rpc = await _resource_error(mallory, f"infra://projects/nobodys{suffix}")
            assert existing["code"] == "RESOURCE_001", suffix
            assert existing_rpc == missing_rpc, suffix
            assert _same_answer(existing, "alices") == _same_answer(missing, "nobodys"), suffix


async def test_a_non_member_gets_the_same_answer_for_a_plan_that_exists_and_one_that_does_not(
    connect: ClientFactory,
) -> None:
    async with connect("alice") as alice:
        await call_ok(alice, "create_project", {"project_id": "alices"})
        plan_id = await make_plan(alice, vpc_stack(), project_id="alices")
    async with connect("mallory") as mallory:
        for tool, args in PLAN_TOOLS:
            existing = await call_error(mallory, tool, {"plan_id": plan_id, **args})
            missing = await call_error(mallory, tool, {"plan_id": MISSING_PLAN, **args})
            assert existing["code"] == "RESOURCE_001", tool
            assert _same_answer(existing, plan_id) == _same_answer(missing, MISSING_PLAN), tool
        for suffix in ("", "/diff"):
            existing, _ = await _resource_error(mallory, f"infra://projects/alices/plans/{plan_id}{suffix}")
            missing, _ = await _resource_error(mallory, f"infra://projects/alices/plans/{MISSING_PLAN}{suffix}")
            assert existing["code"] == "RESOURCE_001", suffix
            assert _same_answer(existing, plan_id) == _same_answer(missing, MISSING_PLAN), suffix


async def test_a_member_whose_role_is_too_low_still_gets_auth_001(connect: ClientFactory) -> None:
    async with connect("alice") as alice:
        await call_ok(alice, "create_project", {"project_id": "alices"})
        await call_ok(
            alice,
            "update_project",
            {
                "project_id": "alices",
                "members": [{"user": "alice", "role": "owner"}, {"user": "vic", "role": "viewer"}],
            },
        )
        plan_id = await make_plan(alice, vpc_stack(), project_id="alices")
    async with connect("vic") as vic:
        assert (await call_error(vic, "update_project", {"project_id": "alices", "name": "x"}))["code"] == "AUTH_001"
        assert (await call_error(vic, "reject_plan", {"plan_id": plan_id}))["code"] == "AUTH_001"


@pytest.mark.parametrize(
    "name", ["rule:auto-approval", "rule:anything", "infra-mcp:reconcile", "system:reconcile", "SYSTEM:x", " rule:x"]
)
async def test_internal_actor_names_cannot_be_added_as_members(connect: ClientFactory, name: str) -> None:
    async with connect("alice") as alice:
        await call_ok(alice, "create_project", {"project_id": "web"})
        error = await call_error(
            alice,
            "update_project",
            {"project_id": "web", "members": [{"user": "alice", "role": "owner"}, {"user": name, "role": "approver"}]},
        )
        assert error["code"] == "VALIDATION_001"
        members = (await call_ok(alice, "get_project", {"project_id": "web"}))["members"]
    assert list(members) == ["alice"]


@pytest.mark.parametrize("name", ["rule:auto-approval", "infra-mcp:reconcile", "system:x"])
def test_an_internal_actor_name_is_refused_as_the_acting_user_at_start_up(tmp_path: Any, name: str) -> None:
    with pytest.raises(ValidationFailed):
        build_server(Settings(data_dir=tmp_path, user=name))
