"""The whole loop through the real ``awslabs.aws-api-mcp-server`` (pinned, started offline), pointed at
``infra-mcp sandbox --http``: create -> replace -> destroy with state checked against the cloud after
each step, and the faults met on the way (upstream killed, upstream hung, endpoint down, read-only)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from tests.e2e.conftest import ClientFactory, call_error, call_ok
from tests.e2e.loop_helpers import Human, approve, make_plan, make_project, plan_of, sandbox_world, state_resources
from tests.real_upstream import LAUNCHER, free_port, sandbox_http, upstream_env, upstream_python

pytestmark = pytest.mark.slow


def stack(cidr: str) -> dict[str, Any]:
    """A VPC, a subnet in it (a Ref: replacing the VPC replaces the subnet) and a bucket."""
    base = ".".join(cidr.split(".")[:2])
    return {
        "resources": [
            {"name": "vpc", "type": "AWS::EC2::VPC", "properties": {"CidrBlock": cidr}, "tags": {"env": "e2e"}},
            {
                "name": "subnet",
                "type": "AWS::EC2::Subnet",
                "properties": {"VpcId": {"Ref": "vpc"}, "CidrBlock": f"{base}.1.0/24"},
            },
            {"name": "bucket", "type": "AWS::S3::Bucket", "properties": {"BucketName": "e2e-real-upstream"}},
        ]
    }


class Rig:
    """The sandbox endpoint, the real upstream's settings, and its process ids (newest last)."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.pidfile = data_dir.parent / "upstream.pids"

    def settings(self, **env: str) -> dict[str, Any]:
        return {
            "upstream_command": upstream_python(),
            "upstream_args": [str(LAUNCHER)],
            "upstream_env": upstream_env(self.endpoint, INFRA_MCP_TEST_UPSTREAM_PIDFILE=str(self.pidfile), **env),
            "upstream_timeout_seconds": 5,
            "upstream_call_deadline_seconds": 20,
        }

    def upstream_pid(self) -> int:
        return int(self.pidfile.read_text().split()[-1])

    def starts(self) -> int:
        return len(self.pidfile.read_text().split()) if self.pidfile.exists() else 0


@pytest.fixture
def rig(data_dir: Path) -> Iterator[Rig]:
    upstream_python()  # install (once) before anything is timed
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with sandbox_http(data_dir, port=port):
        yield Rig(data_dir, port)


@asynccontextmanager
async def served(connect: ClientFactory, rig: Rig, **env: str) -> AsyncIterator[Client]:
    async with connect("alice", settings=rig.settings(**env), elicitation_callback=Human()) as client:
        yield client


async def apply(client: Client, desired: dict[str, Any]) -> dict[str, Any]:
    plan_id = await make_plan(client, desired)
    await approve(client, plan_id)
    await call_ok(client, "execute_plan", {"plan_id": plan_id})
    return await plan_of(client, plan_id)


async def assert_state_matches_cloud(client: Client, rig: Rig) -> set[tuple[str, str]]:
    state = await state_resources(client)
    assert state == sandbox_world(rig.data_dir)
    return state


async def test_create_replace_destroy_through_the_real_upstream_keeps_state_equal_to_the_cloud(
    connect: ClientFactory, rig: Rig
) -> None:
    async with served(connect, rig) as client:
        status = (await call_ok(client, "get_server_status"))["upstream"]
        assert status["healthy"], status["last_error"]
        assert ":000000000000:" in status["caller_arn"]
        await make_project(client)

        created = await apply(client, stack("10.0.0.0/16"))
        assert created["status"] == "executed", created["execution"]
        first = await assert_state_matches_cloud(client, rig)
        assert len(first) == 3

        replaced = await apply(client, stack("10.1.0.0/16"))
        assert replaced["status"] == "executed", replaced["execution"]
        second = await assert_state_matches_cloud(client, rig)
        assert len(second) == 3
        vpcs = {ident for kind, ident in first if kind == "AWS::EC2::VPC"}
        assert not vpcs & {ident for kind, ident in second if kind == "AWS::EC2::VPC"}, "the VPC was replaced"

        destroyed = await apply(client, {"resources": []})
        assert destroyed["status"] == "executed", destroyed["execution"]
        assert await assert_state_matches_cloud(client, rig) == set()


async def test_an_upstream_killed_between_and_during_runs_is_restarted_without_duplicates(
    connect: ClientFactory, rig: Rig
) -> None:
    async with served(connect, rig) as client:
        await make_project(client)
        assert (await apply(client, stack("10.0.0.0/16")))["status"] == "executed"
        os.kill(rig.upstream_pid(), signal.SIGKILL)

        plan_id = await make_plan(client, stack("10.2.0.0/16"))
        await approve(client, plan_id)
        killed_once = False

        async def kill_mid_run(done: float, total: float | None, message: str | None) -> None:
            nonlocal killed_once
            if done > 0 and not killed_once:
                killed_once = True
                os.kill(rig.upstream_pid(), signal.SIGKILL)

        executed = await call_ok(client, "execute_plan", {"plan_id": plan_id}, progress_callback=kill_mid_run)
        assert killed_once
        assert executed["status"] == "executed", executed["changes"]
        assert await assert_state_matches_cloud(client, rig)
        assert len(sandbox_world(rig.data_dir)) == 3, "no duplicate resource"
    assert rig.starts() >= 3


async def test_a_hung_upstream_is_replaced_and_the_plan_still_runs(connect: ClientFactory, rig: Rig) -> None:
    async with served(connect, rig) as client:
        await make_project(client)
        await call_ok(client, "get_server_status")
        hung = rig.upstream_pid()
        os.kill(hung, signal.SIGSTOP)
        try:
            executed = await apply(client, stack("10.0.0.0/16"))
        finally:
            with contextlib.suppress(ProcessLookupError):  # the client already ended the process it gave up on
                os.kill(hung, signal.SIGKILL)
        assert executed["status"] == "executed", executed["execution"]
        assert len(await assert_state_matches_cloud(client, rig)) == 3
        assert rig.upstream_pid() != hung


async def test_an_unreachable_endpoint_leaves_the_plan_approved_and_it_runs_once_the_endpoint_is_back(
    connect: ClientFactory, data_dir: Path
) -> None:
    upstream_python()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    rig = Rig(data_dir, port)
    async with served(connect, rig) as client:
        await make_project(client)
        plan_id = await make_plan(client, stack("10.0.0.0/16"))
        await approve(client, plan_id)
        error = await call_error(client, "execute_plan", {"plan_id": plan_id})
        assert error["code"] == "AWS_MCP_001"
        assert error["details"]["nothing_sent"] is True
        assert error["details"]["reason"] == "endpoint_unreachable"
        assert (await plan_of(client, plan_id))["status"] == "approved"

        with sandbox_http(data_dir, port=port):
            await anyio.sleep(0)
            executed = await call_ok(client, "execute_plan", {"plan_id": plan_id})
            assert executed["status"] == "executed"
            assert len(await assert_state_matches_cloud(client, rig)) == 3


async def test_a_read_only_upstream_is_reported_and_execute_refuses_up_front(connect: ClientFactory, rig: Rig) -> None:
    async with served(connect, rig, READ_OPERATIONS_ONLY="true") as client:
        status = (await call_ok(client, "get_server_status"))["upstream"]
        assert status["healthy"] is True
        assert status["read_only"] is True
        await make_project(client)
        plan_id = await make_plan(client, stack("10.0.0.0/16"))
        await approve(client, plan_id)
        error = await call_error(client, "execute_plan", {"plan_id": plan_id})
        assert error["code"] == "AWS_MCP_004"
        assert error["details"]["reason"] == "read_only"
        assert (await plan_of(client, plan_id))["status"] == "approved"
        assert sandbox_world(rig.data_dir) == set()
