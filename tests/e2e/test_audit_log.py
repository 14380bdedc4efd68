"""The audit log cannot be flooded by strangers, pages instead of truncating, and stays a chain."""

from __future__ import annotations

from tests.e2e.conftest import ClientFactory, call_error, call_ok, read_json
from tests.e2e.loop_helpers import audit, events, make_plan, make_project, vpc_stack


async def test_refusals_to_non_members_never_reach_the_projects_audit(connect: ClientFactory) -> None:
    async with connect("alice") as alice:
        await make_project(alice)
        plan_id = await make_plan(alice, vpc_stack(subnets=0))
        before = await audit(alice)
        async with connect("mallory") as mallory:
            for _ in range(30):
                # A non-member is told the plan is not there (RESOURCE_001), so plan ids cannot be probed.
                assert (await call_error(mallory, "execute_plan", {"plan_id": plan_id}))["code"] == "RESOURCE_001"
                assert (await call_error(mallory, "approve_plan", {"plan_id": plan_id}))["code"] == "RESOURCE_001"
                assert (await call_error(mallory, "reject_plan", {"plan_id": plan_id}))["code"] == "RESOURCE_001"
        after = await audit(alice)
        assert [e["id"] for e in after] == [e["id"] for e in before]


async def test_a_members_repeated_refusals_are_audited_at_a_bounded_rate(connect: ClientFactory) -> None:
    async with connect("alice") as alice:
        await make_project(alice)
        await call_ok(
            alice,
            "update_project",
            {"project_id": "web", "members": [{"user": "alice", "role": "owner"}, {"user": "vic", "role": "viewer"}]},
        )
        plan_id = await make_plan(alice, vpc_stack(subnets=0))
        async with connect("vic") as vic:
            for _ in range(60):
                assert (await call_error(vic, "execute_plan", {"plan_id": plan_id}))["code"] == "AUTH_001"
        refused = [e for e in events(await audit(alice), "plan.execute", plan_id) if e["actor"] == "vic"]
        assert len(refused) == 10
        assert (await read_json(alice, "infra://projects/web/audit/verify"))["intact"] is True


async def test_the_audit_resource_pages_through_every_event(connect: ClientFactory) -> None:
    async with connect("alice") as alice:
        await make_project(alice)
        for i in range(210):
            await call_ok(alice, "update_project", {"project_id": "web", "description": f"revision {i}"})
        first = await read_json(alice, "infra://projects/web/audit")
        assert len(first["events"]) == 200
        assert first["next"] is not None
        everything = await audit(alice)
        assert len(everything) == 211
        assert everything[-1]["action"] == "project.create"
        assert len({e["id"] for e in everything}) == 211
