"""Approval and execution through a real MCP client: every way a plan gets (or does not get) to run."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from infra_mcp.plans_cli import login_user
from tests.e2e.conftest import ClientFactory, call_error, call_ok, read_json
from tests.e2e.loop_helpers import (
    Human,
    age_approval,
    approve,
    audit,
    edit_plan_doc,
    events,
    make_plan,
    make_project,
    plan_of,
    plans_in_process,
    sandbox_world,
    state_resources,
    vpc_stack,
)


async def test_an_approved_plan_executes_and_the_state_history_and_audit_record_it(
    connect: ClientFactory, data_dir: Path
) -> None:
    human = Human(comment="looks right")
    async with connect("alice", elicitation_callback=human) as client:
        await make_project(client)
        plan_id = await make_plan(client, vpc_stack(subnets=1, buckets=1))
        answer = await approve(client, plan_id)
        assert answer["approved_by"] == "alice"
        assert answer["method"] == "elicitation"
        assert answer["status"] == "approved"
        assert len(human.prompts) == 1
        assert plan_id in human.prompts[0].message

        approved = await plan_of(client, plan_id)
        approval = approved["approval"]
        assert approval["approved_by"] == "alice"
        assert approval["method"] == "elicitation"
        assert approval["fingerprint"] == approved["fingerprint"]
        assert "looks right" in approval["person_comment"]

        executed = await call_ok(client, "execute_plan", {"plan_id": plan_id})
        assert executed["status"] == "executed"
        assert all(line.startswith("created ") for line in executed["changes"]), executed["changes"]
        ran = await plan_of(client, plan_id)
        outcomes = ran["execution"]["outcomes"]
        assert {o["status"] for o in outcomes} == {"succeeded"}
        assert len(outcomes) == 3

        listed = await call_ok(client, "list_resources", {"project_id": "web"})
        assert sorted(r["name"] for r in listed["resources"]) == ["net-bucket-0", "net-subnet-0", "net-vpc"]
        ids = {r["name"]: r["id"] for r in listed["resources"]}
        assert {o["name"]: o["physical_id"] for o in outcomes} == ids
        subnet = await call_ok(client, "get_resource", {"project_id": "web", "resource": "net-subnet-0"})
        assert subnet["properties"]["VpcId"] == ids["net-vpc"]  # the reference was resolved

        history = await call_ok(client, "get_state_history", {"project_id": "web"})
        newest = history["versions"][0]
        assert history["current_serial"] == ran["execution"]["final_serial"]
        assert newest["change_plan_id"] == plan_id
        assert newest["last_modified_by"] == "alice"
        assert newest["resource_count"] == 3

        log = await audit(client)
        assert [e["outcome"] for e in events(log, "plan.approve", plan_id)] == ["ok"]
        assert events(log, "plan.approve", plan_id)[0]["details"]["method"] == "elicitation"
        assert {e["outcome"] for e in events(log, "plan.execute", plan_id)} >= {"started", "ok"}
        assert await state_resources(client) == sandbox_world(data_dir)


async def test_execution_progress_values_increase_with_every_notification(connect: ClientFactory) -> None:
    seen: list[float] = []

    async def on_progress(done: float, _total: float | None, _message: str | None) -> None:
        seen.append(done)

    async with connect("alice", elicitation_callback=Human()) as client:
        await make_project(client)
        plan_id = await make_plan(client, vpc_stack(subnets=1, buckets=1))
        await approve(client, plan_id)
        await call_ok(client, "execute_plan", {"plan_id": plan_id}, progress_callback=on_progress)
    assert len(seen) >= 3
    assert all(later > earlier for earlier, later in itertools.pairwise(seen)), seen


@pytest.mark.parametrize("action", ["decline", "cancel"])
async def test_a_declined_or_cancelled_prompt_leaves_the_plan_pending_and_unexecutable(
    connect: ClientFactory, data_dir: Path, action: str
) -> None:
    async with connect("alice", elicitation_callback=Human(action)) as client:
        await make_project(client)
        plan_id = await make_plan(client, vpc_stack(subnets=0))
        answer = await call_ok(client, "approve_plan", {"plan_id": plan_id})
        assert answer["outcome"] == {"decline": "declined", "cancel": "cancelled"}[action]
        assert answer["status"] == "pending"
        assert (await plan_of(client, plan_id))["approval"] is None

        error = await call_error(client, "execute_plan", {"plan_id": plan_id})
        assert error["code"] == "APPROVAL_002"
        assert (await plan_of(client, plan_id))["status"] == "pending"
        recorded = events(await audit(client), "plan.approve", plan_id)
        assert [e["outcome"] for e in recorded] == ["declined" if action == "decline" else "cancelled"]
    assert sandbox_world(data_dir) == set()


async def test_a_human_who_answers_no_in_the_form_is_recorded_as_declining(connect: ClientFactory) -> None:
    async with connect("alice", elicitation_callback=Human(approve=False, comment="too big")) as client:
        await make_project(client)
        plan_id = await make_plan(client, vpc_stack(subnets=0))
        answer = await call_ok(client, "approve_plan", {"plan_id": plan_id})
        assert answer["outcome"] == "declined"
        assert (await plan_of(client, plan_id))["status"] == "pending"
        (event,) = events(await audit(client), "plan.approve", plan_id)
        assert event["outcome"] == "declined"
        assert event["details"]["person_comment"] == "too big"


async def test_a_client_without_elicitation_is_told_to_approve_out_of_band(connect: ClientFactory) -> None:
    async with connect("alice") as client:
        await make_project(client)
        plan_id = await make_plan(client, vpc_stack(subnets=0))
        error = await call_error(client, "approve_plan", {"plan_id": plan_id})
        assert error["code"] == "APPROVAL_003"
        command = error["details"]["for_the_person"]
        assert f"plans approve {plan_id}" in command
        assert "INFRA_MCP_DATA_DIR=" in command
        assert command in error["message"]
        assert (await plan_of(client, plan_id))["status"] == "pending"


async def test_a_project_that_opted_out_approves_without_a_prompt_and_the_opt_out_is_audited(
    connect: ClientFactory,
) -> None:
    async with connect("alice") as client:  # no elicitation support: none is needed
        await make_project(client, require_human_confirmation=False)
        plan_id = await make_plan(client, vpc_stack(subnets=0))
        answer = await approve(client, plan_id)
        assert answer["method"] == "no_confirmation"
        assert (await plan_of(client, plan_id))["approval"]["method"] == "no_confirmation"
        log = await audit(client)
        assert len(events(log, "approval.human_confirmation_disabled")) == 1
        assert events(log, "plan.approve", plan_id)[0]["details"]["method"] == "no_confirmation"


async def test_self_approval_is_refused_where_forbidden_and_another_approver_can_approve(
    connect: ClientFactory,
) -> None:
    async with connect("alice", elicitation_callback=Human()) as alice:
        await make_project(alice, allow_self_approval=False)
        await call_ok(
            alice,
            "update_project",
            {"project_id": "web", "members": [{"user": "alice", "role": "owner"}, {"user": "bob", "role": "approver"}]},
        )
        plan_id = await make_plan(alice, vpc_stack(subnets=0))
        error = await call_error(alice, "approve_plan", {"plan_id": plan_id})
        assert error["code"] == "APPROVAL_002"
        assert (await plan_of(alice, plan_id))["status"] == "pending"
    bobs_human = Human()
    async with connect("bob", elicitation_callback=bobs_human) as bob:
        answer = await approve(bob, plan_id)
        assert answer["approved_by"] == "bob"
        assert len(bobs_human.prompts) == 1
        log = await audit(bob)
    assert [(e["actor"], e["outcome"]) for e in reversed(events(log, "plan.approve", plan_id))] == [
        ("alice", "refused"),
        ("bob", "ok"),
    ]


async def test_a_plan_edited_in_the_database_after_approval_is_refused(connect: ClientFactory, data_dir: Path) -> None:
    async with connect("alice", elicitation_callback=Human()) as client:
        await make_project(client)
        plan_id = await make_plan(client, vpc_stack(subnets=0))
        await approve(client, plan_id)

        def widen(doc: dict[str, Any]) -> None:
            (change,) = doc["changes"]
            change["desired"]["properties"]["CidrBlock"] = "0.0.0.0/0"

        edit_plan_doc(data_dir, plan_id, widen)
        error = await call_error(client, "execute_plan", {"plan_id": plan_id})
        assert error["code"] == "INTEGRITY_001"
        assert (await call_ok(client, "list_resources", {"project_id": "web"}))["count"] == 0
        assert events(await audit(client), "plan.execute", plan_id)[0]["outcome"] == "refused"
    assert sandbox_world(data_dir) == set()


async def test_a_plan_whose_fingerprint_and_approval_were_both_rewritten_is_still_refused(
    connect: ClientFactory, data_dir: Path
) -> None:
    """An attacker who recomputes the plan's fingerprint, and the approval's, has no server key for the MACs."""
    async with connect("alice", elicitation_callback=Human()) as client:
        await make_project(client)
        plan_id = await make_plan(client, vpc_stack(subnets=0))
        await approve(client, plan_id)

        from infra_mcp.domain.plan import Plan

        def rewrite(doc: dict[str, Any]) -> None:
            doc["changes"][0]["desired"]["properties"]["CidrBlock"] = "10.9.0.0/16"
            doc["fingerprint"] = Plan.model_validate(doc).compute_fingerprint()
            doc["approval"]["fingerprint"] = doc["fingerprint"]

        edit_plan_doc(data_dir, plan_id, rewrite)
        assert (await call_error(client, "execute_plan", {"plan_id": plan_id}))["code"] == "INTEGRITY_001"
    assert sandbox_world(data_dir) == set()


async def test_executing_a_plan_made_against_an_older_state_is_refused(connect: ClientFactory, data_dir: Path) -> None:
    async with connect("alice", elicitation_callback=Human()) as client:
        await make_project(client)
        older = await make_plan(client, vpc_stack("a", subnets=0))
        newer = await make_plan(client, vpc_stack("b", subnets=0))
        await approve(client, older)
        await approve(client, newer)
        assert (await call_ok(client, "execute_plan", {"plan_id": newer}))["status"] == "executed"

        # Executing `newer` retired every plan made against the old serial (supersede_others), so the
        # refusal is by status: PLAN_003, superseded. (Staleness found at execution time is PLAN_001: below.)
        assert (await plan_of(client, older))["status"] == "superseded"
        error = await call_error(client, "execute_plan", {"plan_id": older})
        assert error["code"] == "PLAN_003"
        assert error["details"]["status"] == "superseded"
        assert [r["name"] for r in (await call_ok(client, "list_resources", {"project_id": "web"}))["resources"]] == [
            "b-vpc"
        ]
        assert await state_resources(client) == sandbox_world(data_dir)


async def test_an_approved_plan_is_refused_as_stale_when_the_state_moved_without_an_execution(
    connect: ClientFactory, data_dir: Path
) -> None:
    """A state that moved underneath (a restore) makes an approved plan stale: PLAN_001 precisely."""
    async with connect("alice", elicitation_callback=Human()) as client:
        await make_project(client)
        first = await make_plan(client, vpc_stack("a", subnets=0))
        await approve(client, first)
        await call_ok(client, "execute_plan", {"plan_id": first})
        second = await make_plan(client, vpc_stack("a", subnets=0, buckets=1))
        await approve(client, second)
        await call_ok(client, "restore_state", {"project_id": "web", "version": 1})

        error = await call_error(client, "execute_plan", {"plan_id": second})
        assert error["code"] == "PLAN_001"
        assert (await plan_of(client, second))["status"] == "superseded"
        assert ("AWS::S3::Bucket", "a-b-0") not in sandbox_world(data_dir)


async def test_an_expired_approval_is_refused_and_the_plan_expires(connect: ClientFactory, data_dir: Path) -> None:
    async with connect("alice", elicitation_callback=Human()) as client:
        await make_project(client, approval_ttl_minutes=1)
        plan_id = await make_plan(client, vpc_stack(subnets=0))
        answer = await approve(client, plan_id)
        assert answer["expires_at"] is not None
        age_approval(data_dir, plan_id, minutes=2)  # two minutes pass (approval data is not fingerprinted)

        error = await call_error(client, "execute_plan", {"plan_id": plan_id})
        assert error["code"] == "APPROVAL_001"
        assert (await plan_of(client, plan_id))["status"] == "expired"
        assert (await call_error(client, "approve_plan", {"plan_id": plan_id}))["code"] == "PLAN_003"
        assert (await call_error(client, "execute_plan", {"plan_id": plan_id}))["code"] == "PLAN_003"
    assert sandbox_world(data_dir) == set()


async def test_a_rejected_plan_can_never_be_approved_or_executed(connect: ClientFactory) -> None:
    async with connect("alice", elicitation_callback=Human()) as client:
        await make_project(client)
        plan_id = await make_plan(client, vpc_stack(subnets=0))
        await approve(client, plan_id)
        rejected = await call_ok(client, "reject_plan", {"plan_id": plan_id, "reason": "wrong account"})
        assert rejected["status"] == "rejected"
        assert (await call_error(client, "approve_plan", {"plan_id": plan_id}))["code"] == "PLAN_003"
        assert (await call_error(client, "execute_plan", {"plan_id": plan_id}))["code"] == "PLAN_003"
        assert events(await audit(client), "plan.reject", plan_id)[0]["details"]["reason"] == "wrong account"


async def test_the_plan_resources_show_the_plan_its_diff_and_its_audit(connect: ClientFactory) -> None:
    async with connect("alice", elicitation_callback=Human()) as client:
        await make_project(client)
        plan_id = await make_plan(client, vpc_stack(subnets=0))
        shown = await read_json(client, f"infra://projects/web/plans/{plan_id}")
        assert shown["id"] == plan_id
        diff = await client.read_resource(f"infra://projects/web/plans/{plan_id}/diff")
        assert "net-vpc" in diff.contents[0].text  # type: ignore[union-attr]
        listed = await call_ok(client, "list_plans", {"project_id": "web", "status": "pending"})
        assert [p["plan_id"] for p in listed["plans"]] == [plan_id]


# ---- the out-of-band CLI: a person in a terminal, on the same database ---------------------------------


async def test_a_person_approves_out_of_band_and_the_agent_executes(connect: ClientFactory, data_dir: Path) -> None:
    person = login_user()
    async with connect("alice") as alice:  # an agent host without elicitation
        await make_project(alice, allow_self_approval=False)
        await call_ok(
            alice,
            "update_project",
            {
                "project_id": "web",
                "members": [{"user": "alice", "role": "owner"}, {"user": person, "role": "approver"}],
            },
        )
        plan_id = await make_plan(alice, vpc_stack(subnets=0))
        assert (await call_error(alice, "approve_plan", {"plan_id": plan_id}))["code"] == "APPROVAL_002"

        status, listed = await plans_in_process(data_dir, "list", "web", terminal=False)
        assert status == 0, listed
        assert plan_id in listed
        # At 80 columns each plan is one unbroken row: its id whole, beside its status and risk.
        status, screen = await plans_in_process(data_dir, "list", "web", columns=80)
        assert status == 0, screen
        narrow = re.sub(r"\x1b\[[0-9;]*m", "", screen)  # the colours, not the text
        assert max(len(line) for line in narrow.splitlines()) <= 80, narrow
        assert re.search(rf"{plan_id}\s+pending\s+(low|medium|high)\s+\+1", narrow), narrow
        status, screen = await plans_in_process(data_dir, "approve", plan_id)
        assert status == 0, screen

        plan = await plan_of(alice, plan_id)
        assert plan["status"] == "approved"
        assert plan["approval"]["method"] == "out_of_band"
        assert plan["approval"]["approved_by"] == person
        assert plan["approval"]["person_comment"] == "checked the diff"
        assert plan["approval"]["fingerprint"] == plan["fingerprint"]
        assert (await call_ok(alice, "execute_plan", {"plan_id": plan_id}))["status"] == "executed"


async def test_a_plan_rejected_out_of_band_cannot_be_executed(connect: ClientFactory, data_dir: Path) -> None:
    async with connect("alice", elicitation_callback=Human()) as alice:
        await make_project(alice)
        await call_ok(
            alice,
            "update_project",
            {
                "project_id": "web",
                "members": [{"user": "alice", "role": "owner"}, {"user": login_user(), "role": "approver"}],
            },
        )
        plan_id = await make_plan(alice, vpc_stack(subnets=0))
        await approve(alice, plan_id)
        status, shown = await plans_in_process(data_dir, "reject", plan_id, "--reason", "not today", terminal=False)
        assert status == 0, shown
        assert (await plan_of(alice, plan_id))["status"] == "rejected"
        assert (await call_error(alice, "execute_plan", {"plan_id": plan_id}))["code"] == "PLAN_003"
        status, screen = await plans_in_process(data_dir, "approve", plan_id)
        assert status != 0
        assert "PLAN_003" in screen
    assert sandbox_world(data_dir) == set()
