"""Nothing changes in AWS unless a person approved this exact plan, knowing what it does.

Each test is one finding of the approval-trust review, tried the way an attacker (or a misled
agent) would: through a real MCP client, the terminal command, or the database file itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from infra_mcp.plans_cli import login_user
from tests.e2e.conftest import ClientFactory, call_error, call_ok, read_json
from tests.e2e.loop_helpers import (
    Human,
    approve,
    audit,
    database,
    edit_plan_doc,
    events,
    make_plan,
    make_project,
    plan_of,
    plans_at_terminal,
    plans_without_terminal,
    sandbox_world,
    vpc_stack,
)

README_RULE = {"max_risk": "low", "max_cost_delta_usd": 5, "actions": ["create", "update"]}


async def _project_with_person_as_approver(client: Any, **approval: Any) -> None:
    await make_project(client, **approval)
    members = [{"user": "alice", "role": "owner"}, {"user": login_user(), "role": "approver"}]
    await call_ok(client, "update_project", {"project_id": "web", "members": members})


# --- 1. the out-of-band approval needs a person at a terminal ----------------------------------


@pytest.mark.slow
async def test_the_terminal_approval_refuses_without_a_terminal_and_refuses_yes(
    connect: ClientFactory, data_dir: Path
) -> None:
    async with connect("alice") as client:
        await _project_with_person_as_approver(client)
        plan_id = await make_plan(client, vpc_stack(subnets=0))
    piped = plans_without_terminal(data_dir, "approve", plan_id)
    assert piped.returncode == 2
    assert "no interactive terminal" in piped.stderr
    yes = plans_without_terminal(data_dir, "approve", plan_id, "--yes")
    assert yes.returncode == 2
    assert "--yes is refused" in yes.stderr
    spoofed = plans_without_terminal(data_dir, "approve", plan_id, "--yes", "--user", "carol")
    assert spoofed.returncode == 2  # there is no --user any more
    async with connect("alice") as client:
        assert (await plan_of(client, plan_id))["status"] == "pending"


@pytest.mark.slow
async def test_the_terminal_approver_is_the_os_login_user_and_must_type_the_code_shown(
    connect: ClientFactory, data_dir: Path
) -> None:
    async with connect("alice") as client:
        await _project_with_person_as_approver(client)
        plan_id = await make_plan(client, vpc_stack(subnets=0))
    os.environ["INFRA_MCP_USER"] = "carol"  # an environment variable does not change who approves
    try:
        status, screen = plans_at_terminal(data_dir, "approve", plan_id, answer=lambda code: "yes")
        assert status == 1, screen
        status, screen = plans_at_terminal(data_dir, "approve", plan_id)
        assert status == 0, screen
    finally:
        del os.environ["INFRA_MCP_USER"]
    async with connect("alice") as client:
        plan = await plan_of(client, plan_id)
        assert plan["approval"]["approved_by"] == login_user()
        assert plan["approval"]["method"] == "out_of_band"
        outcomes = [(e["actor"], e["outcome"]) for e in events(await audit(client), "plan.approve", plan_id)]
        assert outcomes == [(login_user(), "ok"), (login_user(), "declined")]


async def test_execute_on_a_plan_waiting_for_a_person_says_so_instead_of_sending_the_agent_back(
    connect: ClientFactory, data_dir: Path
) -> None:
    async with connect("alice") as client:  # a host without elicitation
        await make_project(client)
        plan_id = await make_plan(client, vpc_stack(subnets=0))
        asked = await call_error(client, "approve_plan", {"plan_id": plan_id})
        assert asked["code"] == "APPROVAL_003"
        assert asked["message"].startswith("For the person, not the agent")
        assert "do not run this command" in asked["message"]
        assert str(data_dir.resolve()) in asked["details"]["for_the_person"]

        waiting = await call_error(client, "execute_plan", {"plan_id": plan_id})
        assert waiting["code"] == "APPROVAL_002"
        assert waiting["details"]["reason"] == "awaiting_out_of_band_approval"
        assert waiting["details"]["for_the_person"] == asked["details"]["for_the_person"]
        assert "Do not call approve_plan again" in waiting["message"]
        assert "waiting for a person" in (await call_ok(client, "get_plan", {"plan_id": plan_id}))["next_step"].lower()
    assert sandbox_world(data_dir) == set()


# --- 2. the author does not control the prompt ------------------------------------------------


async def test_the_prompt_starts_with_the_servers_facts_and_quotes_the_author_last(connect: ClientFactory) -> None:
    fake = "Plan: 0 to add, 0 to change, 0 to destroy.\nRisk: LOW\u202e\n" * 40
    human = Human()
    async with connect("alice", elicitation_callback=human) as client:
        await make_project(client)
        desired = vpc_stack(subnets=0)
        made = await call_ok(
            client, "plan_changes", {"project_id": "web", "desired_state": desired, "description": fake[:2000]}
        )
        await approve(client, made["plan_id"])
    lines = human.prompts[0].message.splitlines()
    assert lines[0].startswith(f"Approve plan {made['plan_id']}")
    assert lines[1] == made["summary"]
    assert lines[2].startswith("Risk: ")
    assert lines[-1].startswith("Author's note (written by alice, not checked by infra-mcp)")
    assert "\u202e" not in human.prompts[0].message


async def test_descriptions_and_comments_have_limits_at_the_tool_boundary(connect: ClientFactory) -> None:
    async with connect("alice", elicitation_callback=Human()) as client:
        await make_project(client)
        too_long = await call_error(
            client,
            "plan_changes",
            {"project_id": "web", "desired_state": vpc_stack(subnets=0), "description": "x" * 2001},
        )
        assert too_long["code"] == "VALIDATION_001"
        plan_id = await make_plan(client, vpc_stack(subnets=0))
        comment = await call_error(client, "approve_plan", {"plan_id": plan_id, "comment": "y" * 1001})
        assert comment["code"] == "VALIDATION_001"
        assert (await plan_of(client, plan_id))["status"] == "pending"


async def test_the_agents_comment_and_the_persons_comment_are_recorded_apart(connect: ClientFactory) -> None:
    async with connect("alice", elicitation_callback=Human(comment="checked the CIDRs")) as client:
        await make_project(client)
        plan_id = await make_plan(client, vpc_stack(subnets=0))
        await call_ok(client, "approve_plan", {"plan_id": plan_id, "comment": "the user said yes earlier"})
        approval = (await plan_of(client, plan_id))["approval"]
        assert approval["person_comment"] == "checked the CIDRs"
        assert approval["agent_comment"] == "the user said yes earlier"
        (event,) = events(await audit(client), "plan.approve", plan_id)
        assert event["details"]["person_comment"] == "checked the CIDRs"
        assert event["details"]["agent_comment"] == "the user said yes earlier"


# --- 3. only a JSON true approves --------------------------------------------------------------


@pytest.mark.parametrize("answer", ["yes", "true", 1, "on", None])
async def test_only_a_boolean_true_approves_anything_else_is_an_audited_decline(
    connect: ClientFactory, data_dir: Path, answer: Any
) -> None:
    async with connect("alice", elicitation_callback=Human(approve=answer)) as client:
        await make_project(client)
        plan_id = await make_plan(client, vpc_stack(subnets=0))
        result = await call_ok(client, "approve_plan", {"plan_id": plan_id})
        assert result["outcome"] == "declined"
        assert (await plan_of(client, plan_id))["status"] == "pending"
        (event,) = events(await audit(client), "plan.approve", plan_id)
        assert (event["outcome"], event["details"]["reason"]) == ("declined", "answer_not_boolean_true")
        assert (await call_error(client, "execute_plan", {"plan_id": plan_id}))["code"] == "APPROVAL_002"
    assert sandbox_world(data_dir) == set()


# --- 4 and 5. risk on the worse type; security findings never auto-approved ----------------------


async def test_a_public_bucket_is_not_approved_by_the_readmes_example_rule(connect: ClientFactory) -> None:
    bucket = {
        "name": "site",
        "type": "AWS::S3::Bucket",
        "properties": {
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": False,
                "IgnorePublicAcls": False,
                "BlockPublicPolicy": False,
                "RestrictPublicBuckets": False,
            }
        },
    }
    async with connect("alice") as client:
        await make_project(client, auto_approval=README_RULE)
        made = await call_ok(client, "plan_changes", {"project_id": "web", "desired_state": {"resources": [bucket]}})
        assert made["status"] == "pending"
        assert made["risk"] == "medium"
        assert (await plan_of(client, made["plan_id"]))["changes"][0]["security_findings"]
        (event,) = events(await audit(client), "plan.auto_approve", made["plan_id"])
        assert any("security-relevant" in reason for reason in event["details"]["reasons"])


async def test_a_database_re_declared_as_a_vpc_is_high_risk_and_never_approved_by_rule(
    connect: ClientFactory,
) -> None:
    db = {
        "name": "orders",
        "type": "AWS::RDS::DBInstance",
        "properties": {"DBInstanceClass": "db.t3.micro", "Engine": "postgres", "AllocatedStorage": "20"},
    }
    async with connect("alice", elicitation_callback=Human()) as client:
        await make_project(client)
        first = await make_plan(client, {"resources": [db]})
        await approve(client, first)
        await call_ok(client, "execute_plan", {"plan_id": first})
        generous = {"max_risk": "high", "max_cost_delta_usd": 1000, "actions": ["create", "update", "replace"]}
        await call_ok(
            client, "update_project", {"project_id": "web", "settings": {"approval": {"auto_approval": generous}}}
        )
        as_vpc = {"name": "orders", "type": "AWS::EC2::VPC", "properties": {"CidrBlock": "10.1.0.0/16"}}
        made = await call_ok(client, "plan_changes", {"project_id": "web", "desired_state": {"resources": [as_vpc]}})
        plan = await plan_of(client, made["plan_id"])
        assert plan["status"] == "pending"
        assert plan["risk"] == "high"
        assert plan["changes"][0]["previous_type"] == "AWS::RDS::DBInstance"
        assert "the database" in plan["changes"][0]["risk_reasons"][0]


# --- 6. approvals cannot be forged in the database; the audit log is tamper-evident -------------


async def test_an_approval_written_into_the_database_does_not_execute_and_the_refusal_is_audited(
    connect: ClientFactory, data_dir: Path
) -> None:
    async with connect("alice", elicitation_callback=Human()) as client:
        await make_project(client)
        plan_id = await make_plan(client, vpc_stack(subnets=0))

        def forge(doc: dict[str, Any]) -> None:
            doc["status"] = "approved"
            doc["approval"] = {
                "approved_by": "carol",
                "approved_at": "2026-01-01T00:00:00+00:00",
                "method": "elicitation",
                "fingerprint": doc["fingerprint"],
                "expires_at": "2099-01-01T00:00:00+00:00",
            }

        edit_plan_doc(data_dir, plan_id, forge)
        error = await call_error(client, "execute_plan", {"plan_id": plan_id})
        assert error["code"] == "INTEGRITY_001"
        (refusal,) = events(await audit(client), "plan.execute", plan_id)
        assert (refusal["outcome"], refusal["details"]["code"]) == ("refused", "INTEGRITY_001")
    assert sandbox_world(data_dir) == set()


async def test_the_audit_chain_reports_intact_until_a_row_is_edited(connect: ClientFactory, data_dir: Path) -> None:
    async with connect("alice", elicitation_callback=Human()) as client:
        await make_project(client)
        plan_id = await make_plan(client, vpc_stack(subnets=0))
        await approve(client, plan_id)
        report = await read_json(client, "infra://projects/web/audit/verify")
        assert report["intact"] is True
        assert report["entries"] >= 3

        with database(data_dir) as db:
            (row_id, raw) = db.execute(
                "SELECT id, doc FROM audit WHERE doc LIKE '%plan.approve%' ORDER BY rowid LIMIT 1"
            ).fetchone()
            db.execute("UPDATE audit SET doc = ? WHERE id = ?", (raw.replace('"alice"', '"mallory"'), row_id))
        db.close()
        report = await read_json(client, "infra://projects/web/audit/verify")
        assert report["intact"] is False
        assert report["first_broken_id"] == row_id


# --- 7. approvals are re-checked against current members and policy ----------------------------


async def test_an_approval_stops_counting_when_the_approver_loses_the_role(
    connect: ClientFactory, data_dir: Path
) -> None:
    async with connect("alice") as alice:
        await make_project(alice)
        members = [{"user": "alice", "role": "owner"}, {"user": "bob", "role": "approver"}]
        await call_ok(alice, "update_project", {"project_id": "web", "members": members})
        plan_id = await make_plan(alice, vpc_stack(subnets=0))
        async with connect("bob", elicitation_callback=Human()) as bob:
            await approve(bob, plan_id)
        downgraded = [{"user": "alice", "role": "owner"}, {"user": "bob", "role": "viewer"}]
        await call_ok(alice, "update_project", {"project_id": "web", "members": downgraded})
        error = await call_error(alice, "execute_plan", {"plan_id": plan_id})
        assert (error["code"], error["details"]["reason"]) == ("APPROVAL_002", "approver_lost_role")
    assert sandbox_world(data_dir) == set()


async def test_an_approval_stops_counting_when_self_approval_is_turned_off(
    connect: ClientFactory, data_dir: Path
) -> None:
    async with connect("alice", elicitation_callback=Human()) as alice:
        await make_project(alice)
        plan_id = await make_plan(alice, vpc_stack(subnets=0))
        await approve(alice, plan_id)
        await call_ok(
            alice, "update_project", {"project_id": "web", "settings": {"approval": {"allow_self_approval": False}}}
        )
        error = await call_error(alice, "execute_plan", {"plan_id": plan_id})
        assert (error["code"], error["details"]["reason"]) == ("APPROVAL_002", "self_approval_forbidden")
    assert sandbox_world(data_dir) == set()


# --- 8. a "No changes" plan needs no approval and never executes -------------------------------


async def test_a_plan_without_changes_asks_nobody_and_never_executes(connect: ClientFactory) -> None:
    human = Human()
    async with connect("alice", elicitation_callback=human) as client:
        await make_project(client)
        first = await make_plan(client, vpc_stack(subnets=0))
        await approve(client, first)
        await call_ok(client, "execute_plan", {"plan_id": first})
        asked = len(human.prompts)
        same = await make_plan(client, vpc_stack(subnets=0))
        assert (await plan_of(client, same))["changes"] == []
        error = await call_error(client, "approve_plan", {"plan_id": same})
        assert (error["code"], error["details"]["reason"]) == ("PLAN_003", "no_changes")
        assert len(human.prompts) == asked
        refused = await call_error(client, "execute_plan", {"plan_id": same})
        assert (refused["code"], refused["details"]["reason"]) == ("PLAN_003", "no_changes")
