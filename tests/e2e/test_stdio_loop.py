"""The whole loop over real stdio, as an agent host runs it: a subprocess server, its sandbox, a human."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from tests.e2e.conftest import call_ok, read_json, stdio_params
from tests.e2e.loop_helpers import Human, approve, audit, events, make_plan, make_project, sandbox_world, vpc_stack

pytestmark = pytest.mark.slow


async def test_create_plan_approve_execute_with_progress_then_read_resources_and_history(data_dir: Path) -> None:
    human = Human(comment="ship it")
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async with Client(stdio_params(data_dir), elicitation_callback=human) as client:
        await make_project(client)
        plan_id = await make_plan(client, vpc_stack(subnets=2, buckets=1))
        answer = await approve(client, plan_id)
        assert answer["method"] == "elicitation"
        assert len(human.prompts) == 1

        executed = await call_ok(client, "execute_plan", {"plan_id": plan_id}, progress_callback=on_progress)
        assert executed["status"] == "executed"
        assert progress, "no progress notification arrived"
        assert {total for _, total, _ in progress} == {4}
        assert max(done for done, _, _ in progress) == 4
        assert [done for done, _, _ in progress] == sorted(done for done, _, _ in progress)

        listed = await call_ok(client, "list_resources", {"project_id": "web"})
        assert listed["count"] == 4
        ran = await read_json(client, executed["plan_uri"])
        outcomes = {o["name"]: o["physical_id"] for o in ran["execution"]["outcomes"]}
        assert {r["name"]: r["id"] for r in listed["resources"]} == outcomes
        assert sandbox_world(data_dir) == {(r["type"], r["id"]) for r in listed["resources"]}

        history = await call_ok(client, "get_state_history", {"project_id": "web"})
        assert history["current_serial"] == history["versions"][0]["serial"]
        assert history["versions"][0]["change_plan_id"] == plan_id
        assert history["versions"][0]["resource_count"] == 4
        state = await read_json(client, "infra://projects/web/state")
        assert state["metadata"]["changePlanId"] == plan_id
        assert state["metadata"]["lastModifiedBy"] == "alice"

        log = await audit(client)
        assert events(log, "plan.approve", plan_id)[0]["outcome"] == "ok"
        assert "ok" in {e["outcome"] for e in events(log, "plan.execute", plan_id)}

        status = (await call_ok(client, "get_server_status"))["upstream"]
        assert status["kind"] == "sandbox"
