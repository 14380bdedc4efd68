"""Fault injection: the server SIGKILLed during each kind of write (issue 9, reliability tests).

Each case prepares a project in process, then runs the real ``infra-mcp serve`` over stdio (see
``crashing_server``), which kills itself at one exact point of one write. After a restart nothing
committed is lost and nothing is half-written: the database passes ``integrity_check``, every
project and plan row parses, no plan is half-approved, every state version parses with a matching
checksum, and the interrupted write is either wholly there or wholly absent.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from infra_mcp.domain.plan import Plan, PlanStatus
from infra_mcp.domain.project import Project
from infra_mcp.stores.sqlite import MIGRATIONS
from infra_mcp.stores.sqlite_integrity import check_database
from infra_mcp.stores.versioned_state import parse_state
from tests.e2e.conftest import ClientFactory, call_ok
from tests.e2e.loop_helpers import (
    Human,
    approve,
    make_plan,
    make_project,
    plan_of,
    sandbox_world,
    state_resources,
    stored_plan,
    vpc_stack,
)

ROOT = Path(__file__).resolve().parents[2]
DESIRED = vpc_stack(subnets=0)

pytestmark = pytest.mark.slow


def _crashing_server(data_dir: Path, point: str) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    env.update(
        {
            "INFRA_MCP_DATA_DIR": str(data_dir),
            "INFRA_MCP_USER": "alice",
            "INFRA_MCP_LOG_LEVEL": "WARNING",
            "INFRA_MCP_TEST_CRASH_AT": point,
            "INFRA_MCP_TEST_CRASH_MARK": str(_mark(data_dir)),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
    )
    return StdioServerParameters(command=sys.executable, args=["-m", "tests.e2e.crashing_server"], env=env, cwd=ROOT)


def _mark(data_dir: Path) -> Path:
    return data_dir.parent / "crashed-at"


async def _call_until_killed(data_dir: Path, point: str, tool: str, args: dict[str, Any]) -> None:
    """Make the one call that kills the server; it must not answer."""
    answered = None
    # The connection dies with the server, in whatever way the transport reports it.
    with contextlib.suppress(Exception):
        async with Client(_crashing_server(data_dir, point), elicitation_callback=Human()) as doomed:
            answered = await doomed.call_tool(tool, args)
    assert answered is None, f"the server answered instead of dying at {point}: {answered}"
    assert _mark(data_dir).read_text() == point  # it died there, not at start-up or elsewhere


def _rows(data_dir: Path, table: str) -> list[str]:
    with sqlite3.connect(data_dir / "infra-mcp.sqlite3") as db:
        docs = [str(row[0]) for row in db.execute(f"SELECT doc FROM {table}")]  # noqa: S608 - fixed names
    db.close()
    return docs


def _assert_nothing_half_written(data_dir: Path) -> None:
    check_database(data_dir / "infra-mcp.sqlite3", known_version=len(MIGRATIONS), full=True)
    for doc in _rows(data_dir, "projects"):
        Project.model_validate_json(doc)
    recorded = {(e["action"], e["target"], e["outcome"]) for e in map(json.loads, _rows(data_dir, "audit"))}
    for doc in _rows(data_dir, "plans"):
        plan = Plan.model_validate_json(doc)
        # A plan and its audit line are one unit of work: no plan nobody recorded making or approving.
        assert ("plan.create", plan.id, "ok") in recorded, plan.id
        if plan.status is PlanStatus.PENDING:
            assert plan.approval is None, plan.id
        if plan.status is PlanStatus.APPROVED:
            assert plan.approval is not None, plan.id
            assert plan.approval.fingerprint == plan.compute_fingerprint(), plan.id
            assert ("plan.approve", plan.id, "ok") in recorded, plan.id
    state_root = data_dir / "state"
    for project in state_root.iterdir() if state_root.is_dir() else []:
        if (project / "state.json").exists():
            parse_state((project / "state.json").read_bytes(), project_id=project.name)
        for version in (project / "history").glob("*.json"):
            parse_state(version.read_bytes(), project_id=project.name, serial=int(version.stem))


# ---- one case per kind of write: what to prepare, the fatal call, and what must hold after -------------------

Prepare = Callable[[ClientFactory], Awaitable[dict[str, Any]]]
Arguments = Callable[[dict[str, Any]], dict[str, Any]]


async def _prepare_project(connect: ClientFactory) -> dict[str, Any]:
    async with connect("alice") as client:
        await make_project(client)
    return {}


async def _prepare_plan(connect: ClientFactory) -> dict[str, Any]:
    async with connect("alice") as client:
        await make_project(client)
        return {"plan_id": await make_plan(client, DESIRED)}


async def _prepare_approved(connect: ClientFactory) -> dict[str, Any]:
    async with connect("alice", elicitation_callback=Human()) as client:
        await make_project(client)
        plan_id = await make_plan(client, DESIRED)
        await approve(client, plan_id)
        return {"plan_id": plan_id}


# write -> (what to prepare in process, the tool whose write is killed, its arguments from what was prepared)
CASES: dict[str, tuple[Prepare, str, Arguments]] = {
    "update_project": (_prepare_project, "update_project", lambda _: {"project_id": "web", "description": "after"}),
    "save_plan": (_prepare_project, "plan_changes", lambda _: {"project_id": "web", "desired_state": DESIRED}),
    "approve": (_prepare_plan, "approve_plan", lambda p: {"plan_id": p["plan_id"], "comment": "reviewed"}),
}


@pytest.mark.parametrize("when", ["before_commit", "after_commit"])
@pytest.mark.parametrize("write", list(CASES))
async def test_a_server_killed_during_a_database_write_loses_nothing_committed_and_leaves_nothing_half_written(
    connect: ClientFactory, data_dir: Path, write: str, when: str
) -> None:
    prepare, tool, args = CASES[write]
    prepared = await prepare(connect)
    await _call_until_killed(data_dir, f"{write}:{when}", tool, args(prepared))

    _assert_nothing_half_written(data_dir)
    committed = when == "after_commit"
    async with connect("alice", elicitation_callback=Human()) as client:  # the restart
        if write == "update_project":
            project = await call_ok(client, "get_project", {"project_id": "web"})
            assert project.get("description") == ("after" if committed else "")
        elif write == "save_plan":
            plans = (await call_ok(client, "list_plans", {"project_id": "web"}))["plans"]
            assert len(plans) == (1 if committed else 0)
        else:
            assert (await plan_of(client, prepared["plan_id"]))["status"] == ("approved" if committed else "pending")
            if not committed:  # the approval is taken again, as if nothing had happened
                await approve(client, prepared["plan_id"])
        # And the server keeps working: a new plan on the same project.
        await make_plan(client, vpc_stack("more", subnets=0, cidr="10.9.0.0/16"))
    _assert_nothing_half_written(data_dir)


async def test_a_server_killed_during_a_state_checkpoint_restarts_to_a_truthful_state(
    connect: ClientFactory, data_dir: Path
) -> None:
    prepared = await _prepare_approved(connect)
    plan_id = prepared["plan_id"]
    await _call_until_killed(data_dir, "checkpoint:committed", "execute_plan", {"plan_id": plan_id})

    history = data_dir / "state" / "web" / "history"
    written = sorted(int(p.stem) for p in history.glob("*.json"))
    assert written == [1]
    assert not (data_dir / "state" / "web" / "state.json").exists()  # killed before the pointer moved
    assert stored_plan(data_dir, plan_id)["status"] == "executing"
    _assert_nothing_half_written(data_dir)

    async with connect("alice") as revived:  # start-up reconciles the interrupted execution
        plan = await plan_of(revived, plan_id)
        assert plan["status"] in {"executed", "failed"}
        resources = await state_resources(revived)
        assert resources == sandbox_world(data_dir)
        assert {t for t, _ in resources} == {"AWS::EC2::VPC"}  # the VPC AWS made is not forgotten
        versions = (await call_ok(revived, "get_state_history", {"project_id": "web"}))["versions"]
    assert {v["serial"] for v in versions} >= set(written)  # a committed version is never lost
    _assert_nothing_half_written(data_dir)
    assert json.loads((data_dir / "state" / "web" / "state.json").read_text())["serial"] == max(
        v["serial"] for v in versions
    )
