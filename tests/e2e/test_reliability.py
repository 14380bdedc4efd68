"""Reliability: concurrent executions, a faulty upstream, and a server killed mid-execution.

After each, the state must be truthful: what the sandbox cloud holds (read from its world file)
is exactly what the project's state holds, by type and physical id.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from infra_mcp.domain.common import isoformat
from tests.e2e.conftest import ClientFactory, call_error, call_ok, read_json, stdio_params
from tests.e2e.loop_helpers import (
    Human,
    approve,
    audit,
    edit_plan_doc,
    events,
    expire_state_lock,
    make_plan,
    make_project,
    plan_of,
    sandbox_world,
    state_resources,
    stored_plan,
    vpc_stack,
)

SLOW_SANDBOX = {"sandbox_latency_ms": 200}

# What Cloud Control says when a request fails (handler error codes and API exceptions).
AWS_ERROR_CODES = {
    "InvalidRequest",
    "AlreadyExists",
    "NotFound",
    "NotUpdatable",
    "ServiceInternalError",
    "GeneralServiceException",
    "Throttling",
    "ThrottlingException",
    "ServiceInternalErrorException",
    "ConcurrentOperationException",
}


async def _execute(client: Client, plan_id: str, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    """Run execute_plan; ("ok", plan) or ("error", error payload)."""
    result = await client.call_tool("execute_plan", {"plan_id": plan_id}, **kwargs)
    if result.is_error:
        return "error", json.loads(result.content[0].text)  # type: ignore[union-attr]
    assert result.structured_content is not None
    return "ok", await read_json(client, result.structured_content["plan_uri"])


# ---- two executions on one project ----------------------------------------------------------------------


async def test_a_second_execution_while_one_runs_is_refused_with_state_003(
    connect: ClientFactory, data_dir: Path
) -> None:
    async with (
        connect("alice", elicitation_callback=Human(), settings=SLOW_SANDBOX) as first,
        connect("alice", settings=SLOW_SANDBOX) as second,  # another agent session, another server
    ):
        await make_project(first)
        plan_a = await make_plan(first, vpc_stack("a", subnets=1))
        plan_b = await make_plan(first, vpc_stack("b", subnets=1, cidr="10.1.0.0/16"))
        await approve(first, plan_a)
        await approve(first, plan_b)

        under_way = anyio.Event()

        async def progress(_done: float, _total: float | None, _message: str | None) -> None:
            under_way.set()

        results: dict[str, tuple[str, dict[str, Any]]] = {}

        async def run_a() -> None:
            results["a"] = await _execute(first, plan_a, progress_callback=progress)

        async with anyio.create_task_group() as tg:
            tg.start_soon(run_a)
            with anyio.fail_after(30):
                await under_way.wait()  # plan A holds the project's state lock now
            results["b"] = await _execute(second, plan_b)
            results["a again"] = await _execute(second, plan_a)

        assert results["a"][0] == "ok"
        assert results["a"][1]["status"] == "executed"
        assert results["b"] == ("error", results["b"][1])
        assert results["b"][1]["code"] == "STATE_003"
        assert results["a again"][0] == "error"
        assert results["a again"][1]["code"] in {"STATE_003", "PLAN_003"}

        # B was made against the state A replaced: it can never run now.
        assert (await plan_of(second, plan_b))["status"] == "superseded"
        assert (await call_error(second, "execute_plan", {"plan_id": plan_b}))["code"] == "PLAN_003"
        names = {r["name"] for r in (await call_ok(second, "list_resources", {"project_id": "web"}))["resources"]}
        assert names == {"a-vpc", "a-subnet-0"}
        assert await state_resources(second) == sandbox_world(data_dir)
        refusals = [e for e in events(await audit(second), "plan.execute") if e["outcome"] == "refused"]
        assert "STATE_003" in {e["details"].get("code") for e in refusals}


async def test_the_same_plan_executed_twice_at_once_runs_exactly_once(connect: ClientFactory, data_dir: Path) -> None:
    async with connect("alice", elicitation_callback=Human(), settings=SLOW_SANDBOX) as client:
        await make_project(client)
        plan_id = await make_plan(client, vpc_stack(subnets=1, buckets=1))
        await approve(client, plan_id)

        # Two calls in flight at once on one session, as an eager (or retrying) agent sends them.
        results: list[tuple[str, dict[str, Any]]] = []

        async def run() -> None:
            results.append(await _execute(client, plan_id))

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            tg.start_soon(run)

        assert sorted(kind for kind, _ in results) == ["error", "ok"]
        ran = next(plan for kind, plan in results if kind == "ok")
        refused = next(error for kind, error in results if kind == "error")
        assert ran["status"] == "executed"
        assert refused["code"] in {"STATE_003", "PLAN_003"}
        state = await state_resources(client)
        assert len(state) == 3
        assert state == sandbox_world(data_dir)
        history = await call_ok(client, "get_state_history", {"project_id": "web"})
        assert {v["change_plan_id"] for v in history["versions"]} == {plan_id}  # no second run wrote anything


# ---- a faulty upstream ----------------------------------------------------------------------------------


async def test_a_faulty_throttling_upstream_ends_executed_or_failed_with_a_truthful_state(
    connect: ClientFactory, data_dir: Path
) -> None:
    faulty = {"sandbox_failure_rate": 0.2, "sandbox_throttle_rate": 0.3, "sandbox_seed": 7}
    async with connect("alice", elicitation_callback=Human(), settings=faulty) as client:
        await make_project(client)
        plan_id = await make_plan(client, vpc_stack(subnets=4, buckets=5))
        await approve(client, plan_id)
        with anyio.fail_after(60):
            kind, plan = await _execute(client, plan_id)
        assert kind == "ok", plan
        assert plan["status"] in {"executed", "failed"}
        outcomes = plan["execution"]["outcomes"]
        assert len(outcomes) == 10
        assert {o["status"] for o in outcomes} <= {"succeeded", "failed", "skipped"}
        for outcome in outcomes:
            if outcome["status"] == "failed":
                assert outcome["error_code"] in AWS_ERROR_CODES | {"DependencyFailed"}, outcome
            if outcome["status"] == "succeeded":
                assert outcome["physical_id"]
        assert (plan["status"] == "executed") == all(o["status"] == "succeeded" for o in outcomes)

        in_state = await state_resources(client)
        assert in_state == sandbox_world(data_dir)
        succeeded = {o["physical_id"] for o in outcomes if o["status"] == "succeeded"}
        assert {ident for _, ident in in_state} == succeeded
        assert (await plan_of(client, plan_id))["status"] == plan["status"]


# ---- the server killed mid-execution --------------------------------------------------------------------


def _children(parent: int) -> dict[int, list[bytes]]:
    """Live child processes of ``parent`` and their command lines (Linux /proc)."""
    found: dict[int, list[bytes]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat[1]) == parent and stat[0] != "Z":
            found[int(entry.name)] = cmdline
    return found


def _our_server() -> int:
    [pid] = [pid for pid, cmd in _children(os.getpid()).items() if b"infra_mcp" in cmd and b"serve" in cmd]
    return pid


@pytest.mark.slow
async def test_a_server_killed_mid_execution_is_reconciled_on_restart(connect: ClientFactory, data_dir: Path) -> None:
    async with connect("alice", elicitation_callback=Human()) as client:
        await make_project(client)
        plan_id = await make_plan(client, vpc_stack(subnets=3, buckets=4))
        await approve(client, plan_id)

    some_done = anyio.Event()

    async def progress(done: float, _total: float | None, _message: str | None) -> None:
        if done >= 1:
            some_done.set()

    sandbox_pids: list[int] = []
    killed = False

    async def execute_until_killed(client: Client) -> None:
        try:
            await _execute(client, plan_id, progress_callback=progress)
        except Exception:
            if not killed:
                raise

    # The connection dies with the server, in whatever way the transport reports it; `killed` says it got there.
    with contextlib.suppress(Exception):
        async with (
            Client(stdio_params(data_dir, INFRA_MCP_SANDBOX_LATENCY_MS="300")) as doomed,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(execute_until_killed, doomed)
            with anyio.fail_after(30):
                await some_done.wait()
            server = _our_server()
            sandbox_pids += list(_children(server))
            os.kill(server, signal.SIGKILL)
            killed = True
    assert killed
    for pid in sandbox_pids:  # orphaned by the kill; it would exit on EOF, but do not leave it to chance
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    interrupted = stored_plan(data_dir, plan_id)
    assert interrupted["status"] == "executing"
    journal = data_dir / "state" / "web" / "journal.json"
    assert expire_state_lock(data_dir)  # the dead server's lease; its 60 s pass

    async with connect("alice") as revived:  # the server starting again (in process: the same start-up)
        plan = await plan_of(revived, plan_id)
        assert plan["status"] in {"executed", "failed"}
        assert {o["status"] for o in plan["execution"]["outcomes"]} <= {"succeeded", "failed", "skipped"}
        assert await state_resources(revived) == sandbox_world(data_dir)
        reconciled = events(await audit(revived), "state.reconcile")
        assert reconciled
        assert reconciled[0]["details"]["unresolved"] == 0
        if journal.exists():
            assert json.loads(journal.read_text()).get("entries") in ([], None)

        # A follow-up plan to the same desired state creates only what is missing: nothing was forgotten.
        follow_up = await call_ok(
            revived, "plan_changes", {"project_id": "web", "desired_state": vpc_stack(subnets=3, buckets=4)}
        )
        existing = {r["name"] for r in (await call_ok(revived, "list_resources", {"project_id": "web"}))["resources"]}
        full = await read_json(revived, follow_up["plan_uri"])
        creates = {c["name"] for c in full["changes"] if c["action"] == "create"}
        assert creates.isdisjoint(existing)
        assert creates | existing == {r["name"] for r in vpc_stack(subnets=3, buckets=4)["resources"]}


# ---- what reconciliation concludes, from a crash left on disk -------------------------------------------


def _interrupted(doc: dict[str, Any]) -> None:
    """The plan as a kill leaves it when a checkpoint caught a finished change not yet marked succeeded."""
    doc["status"] = "executing"
    doc["execution"]["finished_at"] = None
    doc["execution"]["final_serial"] = None
    for outcome in doc["execution"]["outcomes"]:
        outcome["status"] = "running"
        outcome["finished_at"] = None


async def test_a_change_whose_result_reached_the_state_before_a_crash_is_reported_succeeded(
    connect: ClientFactory, data_dir: Path
) -> None:
    async with connect("alice", elicitation_callback=Human()) as client:
        await make_project(client)
        plan_id = await make_plan(client, vpc_stack(subnets=0))
        await approve(client, plan_id)
        await call_ok(client, "execute_plan", {"plan_id": plan_id})
        in_state = await state_resources(client)
    # Exactly what a SIGKILL at that moment leaves: state and cloud hold the VPC, the journal is empty
    # (its entry was dropped after the checkpoint), and the saved outcome still says 'running'.
    edit_plan_doc(data_dir, plan_id, _interrupted)
    assert stored_plan(data_dir, plan_id)["execution"]["outcomes"][0]["physical_id"]

    async with connect("alice") as restarted:  # server start reconciles
        plan = await plan_of(restarted, plan_id)
        assert await state_resources(restarted) == in_state == sandbox_world(data_dir)
    assert plan["status"] == "executed"
    assert [o["status"] for o in plan["execution"]["outcomes"]] == ["succeeded"]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


async def test_a_restart_right_after_a_crash_does_not_wait_out_the_dead_servers_lease(
    connect: ClientFactory, data_dir: Path
) -> None:
    async with connect("alice", elicitation_callback=Human()) as client:
        await make_project(client)
        plan_id = await make_plan(client, vpc_stack(subnets=0))
        await approve(client, plan_id)
        await call_ok(client, "execute_plan", {"plan_id": plan_id})

    def still_executing(doc: dict[str, Any]) -> None:
        doc["status"] = "executing"  # outcomes all recorded: only the final status write was lost

    edit_plan_doc(data_dir, plan_id, still_executing)
    now = datetime.now(UTC)
    lock = {
        "lock_id": uuid.uuid4().hex,
        "owner": f"alice@{socket.gethostname()}:{_dead_pid()}:{uuid.uuid4().hex[:8]}",
        "operation": f"execute {plan_id}",
        "acquired_at": isoformat(now - timedelta(seconds=5)),
        "expires_at": isoformat(now + timedelta(seconds=55)),
    }
    (data_dir / "state" / "web" / "state.lock").write_text(json.dumps(lock))

    async with connect("alice") as restarted:
        assert (await plan_of(restarted, plan_id))["status"] == "executed"
