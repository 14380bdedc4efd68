"""A resource whose identifier starts with '-' can be created, updated and deleted through call_aws."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.conftest import ClientFactory, call_ok
from tests.e2e.loop_helpers import Human, approve, make_project, sandbox_world

PARAMETER = ("AWS::SSM::Parameter", "-dash-param")


async def _apply(client: Any, plan: dict[str, Any]) -> dict[str, Any]:
    plan_id = plan["plan_id"]
    await approve(client, plan_id)
    executed = await call_ok(client, "execute_plan", {"plan_id": plan_id})
    assert executed["status"] == "executed", executed["changes"]
    return executed


async def test_a_parameter_named_with_a_leading_dash_is_created_updated_and_deleted_through_the_sandbox(
    connect: ClientFactory, data_dir: Path
) -> None:
    async with connect("alice", elicitation_callback=Human()) as alice:
        await make_project(alice)
        created = await call_ok(
            alice,
            "plan_resource",
            {
                "project_id": "web",
                "action": "create",
                "resource": "dash",
                "type": "AWS::SSM::Parameter",
                "properties": {"Name": "-dash-param", "Type": "String", "Value": "one"},
            },
        )
        await _apply(alice, created)
        assert PARAMETER in sandbox_world(data_dir)

        updated = await call_ok(
            alice,
            "plan_resource",
            {"project_id": "web", "action": "update", "resource": "dash", "properties": {"Value": "two"}},
        )
        await _apply(alice, updated)
        found = await call_ok(alice, "get_resource", {"project_id": "web", "resource": "dash"})
        assert found["properties"]["Value"] == "two"

        deleted = await call_ok(alice, "plan_resource", {"project_id": "web", "action": "delete", "resource": "dash"})
        await _apply(alice, deleted)
        assert PARAMETER not in sandbox_world(data_dir)
