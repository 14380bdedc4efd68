"""Three ``serve --http`` replicas on one PostgreSQL and one S3 state location behave as one service.

Each replica is its own process on its own 127.0.0.1 port. They share a fresh PostgreSQL schema
(projects, plans, approvals, audit), a bucket on a moto S3 server (state, history, journal, the
lease lock), the server key, and the sandbox's simulated cloud; nothing in memory. Approvals use
elicitation through the MCP client (loopback mode has no authentication: every replica acts as
INFRA_MCP_USER). Sessions are per replica: a client talks to one replica for its whole session.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import anyio
import boto3
import httpx2
import pytest
from mcp import Client
from mcp.client.session import ElicitationFnT
from mcp_types import ResourceListChangedNotification
from moto.server import ThreadedMotoServer

from tests.e2e.balancer import Balancer
from tests.e2e.conftest import call_ok, read_json
from tests.e2e.http_server import HttpServer, free_port, http_server
from tests.e2e.loop_helpers import Human, audit, events, make_plan, make_project, sandbox_world, vpc_stack
from tests.integration.state_contract import make_moto_conditional_writes_atomic
from tests.postgres_support import fresh_schema

pytestmark = pytest.mark.slow


@dataclass
class Cluster:
    replicas: list[HttpServer]
    data_dir: Path
    env: dict[str, str]

    @contextlib.asynccontextmanager
    async def client(self, index: int, human: Human | None = None) -> AsyncIterator[Client]:
        """An MCP session with replica ``index`` (approving by elicitation as ``human`` says)."""
        callback = cast(ElicitationFnT, human or Human())
        async with Client(self.replicas[index].mcp_url, elicitation_callback=callback) as client:
            yield client


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free port of 127.0.0.1 (with S3's atomic conditional writes)."""
    with pytest.MonkeyPatch.context() as patch:
        make_moto_conditional_writes_atomic(patch)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@contextlib.contextmanager
def _replicas(count: int, data_dir: Path, env: dict[str, str]) -> Iterator[list[HttpServer]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(http_server(data_dir, **env)) for _ in range(count)]


@contextlib.asynccontextmanager
async def _cluster(tmp_path: Path, s3_endpoint: str, **env: str) -> AsyncIterator[Cluster]:
    bucket = f"state-{os.urandom(6).hex()}"
    boto3.client("s3", region_name="us-east-1", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    data_dir = tmp_path / "shared"
    async with fresh_schema() as database_url:
        shared = {
            "INFRA_MCP_DATABASE_URL": database_url,
            "INFRA_MCP_STATE_LOCATION": f"s3://{bucket}/infra",
            "INFRA_MCP_S3_ENDPOINT_URL": s3_endpoint,
            "INFRA_MCP_DATABASE_POOL_SIZE": "4",
            **env,
        }
        with _replicas(3, data_dir, shared) as replicas:
            yield Cluster(replicas=replicas, data_dir=data_dir, env=shared)


@pytest.fixture
async def cluster(tmp_path: Path, s3_endpoint: str) -> AsyncIterator[Cluster]:
    async with _cluster(tmp_path, s3_endpoint) as running:
        yield running


@pytest.fixture
async def slower_cluster(tmp_path: Path, s3_endpoint: str) -> AsyncIterator[Cluster]:
    """Replicas whose sandbox takes 6 s per change: an execution outlasts a replica's start."""
    async with _cluster(tmp_path, s3_endpoint, INFRA_MCP_SANDBOX_LATENCY_MS="6000") as running:
        yield running


async def _execute(client: Client, plan_id: str, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    """execute_plan: ("executed" | "failed", the plan view) or (the error code, the error payload)."""
    result = await client.call_tool("execute_plan", {"plan_id": plan_id}, **kwargs)
    if result.is_error:
        payload: dict[str, Any] = json.loads(result.content[0].text)  # type: ignore[union-attr]
        return str(payload["code"]), payload
    assert result.structured_content is not None
    return str(result.structured_content["status"]), result.structured_content


async def _resource_names(client: Client) -> set[str]:
    return {r["name"] for r in (await call_ok(client, "list_resources", {"project_id": "web"}))["resources"]}


async def test_a_plan_made_on_one_replica_is_approved_on_a_second_and_executed_on_a_third(cluster: Cluster) -> None:
    desired = vpc_stack(subnets=2)
    human = Human()
    async with cluster.client(0) as first:
        await make_project(first)
        plan_id = await make_plan(first, desired)
    async with cluster.client(1, human) as second:
        approved = await call_ok(second, "approve_plan", {"plan_id": plan_id})
    async with cluster.client(2) as third:
        outcome, executed = await _execute(third, plan_id)
    async with cluster.client(0) as first_again:
        names = await _resource_names(first_again)
        log = await audit(first_again)
        verified = await read_json(first_again, "infra://projects/web/audit/verify")
        status = (await call_ok(first_again, "get_plan", {"plan_id": plan_id}))["status"]

    assert approved["outcome"] == "approved"
    assert plan_id in human.prompts[0].message
    assert (outcome, executed["status"], status) == ("executed", "executed", "executed")
    assert names == {r["name"] for r in desired["resources"]}
    assert [e["outcome"] for e in events(log, "plan.approve", plan_id)] == ["ok"]
    assert events(log, "plan.execute", plan_id)
    assert verified["intact"] is True


async def test_concurrent_executions_on_three_replicas_run_once_and_the_others_get_state_003(
    slower_cluster: Cluster,
) -> None:
    async with slower_cluster.client(0) as first:
        await make_project(first)
        plan_id = await make_plan(first, vpc_stack(subnets=2))
        await call_ok(first, "approve_plan", {"plan_id": plan_id})

    outcomes: list[str] = []

    async def execute_on(index: int) -> None:
        async with slower_cluster.client(index) as client:
            outcomes.append((await _execute(client, plan_id))[0])

    async with anyio.create_task_group() as tg:
        for index in range(3):
            tg.start_soon(execute_on, index)

    assert sorted(outcomes) == ["STATE_003", "STATE_003", "executed"]
    async with slower_cluster.client(2) as third:
        log = await audit(third)
        assert await _resource_names(third) == {r["name"] for r in vpc_stack(subnets=2)["resources"]}
    refused = [e for e in events(log, "plan.execute", plan_id) if e["outcome"] == "refused"]
    assert [e["details"]["code"] for e in refused] == ["STATE_003", "STATE_003"]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == pid:
                    found.append(int(entry.name))
    return found


async def test_a_replica_killed_mid_execution_is_reconciled_by_the_next_execution_on_another(
    slower_cluster: Cluster,
) -> None:
    desired = vpc_stack(subnets=2, buckets=1)
    async with slower_cluster.client(0) as first:
        await make_project(first)
        plan_id = await make_plan(first, desired)
        await call_ok(first, "approve_plan", {"plan_id": plan_id})

    doomed = slower_cluster.replicas[0]
    some_done = anyio.Event()

    async def progress(done: float, _total: float | None, _message: str | None) -> None:
        if done >= 1:
            some_done.set()

    async def execute_until_killed() -> None:
        with contextlib.suppress(Exception):  # the connection dies with the replica, however it says so
            async with slower_cluster.client(0) as client:
                await _execute(client, plan_id, progress_callback=progress)

    async with anyio.create_task_group() as tg:
        tg.start_soon(execute_until_killed)
        with anyio.fail_after(60):
            await some_done.wait()
        sandbox = _children(doomed.process.pid)  # its stdio sandbox upstream, orphaned by the kill
        doomed.process.send_signal(signal.SIGKILL)
        doomed.process.wait(10)
        for pid in sandbox:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        tg.cancel_scope.cancel()

    async with slower_cluster.client(1) as second:
        assert (await call_ok(second, "get_plan", {"plan_id": plan_id}))["status"] == "executing"
        # The next execution on any replica: a plan for what is still missing. It reconciles first
        # (the dead replica's lock is broken: its process is gone); the interrupted plan then ends.
        follow_up = await make_plan(second, desired)
        await call_ok(second, "approve_plan", {"plan_id": follow_up})
        outcome, _ = await _execute(second, follow_up)
        interrupted = (await call_ok(second, "get_plan", {"plan_id": plan_id}))["status"]
        log = await audit(second)
    assert interrupted in {"executed", "failed"}
    assert events(log, "state.reconcile")
    # The follow-up ran if reconciling left the state where it was planned, else it was stale.
    assert outcome in {"executed", "PLAN_001"}

    async with slower_cluster.client(2) as third:
        if outcome == "PLAN_001":
            again = await make_plan(third, desired)
            await call_ok(third, "approve_plan", {"plan_id": again})
            assert (await _execute(third, again))[0] == "executed"
        state = await read_json(third, "infra://projects/web/state")
        verified = await read_json(third, "infra://projects/web/audit/verify")
    in_state = {(r["type"], r["id"]) for r in state["resources"]}
    assert {r["name"] for r in state["resources"]} == {r["name"] for r in desired["resources"]}
    assert in_state == sandbox_world(slower_cluster.data_dir)  # nothing created is forgotten, nothing twice
    assert verified["intact"] is True


# ---- behind one address: what the load balancer must do ------------------------------------------------


async def _whole_loop(client: Client) -> tuple[dict[str, Any], str, list[float]]:
    """Project, plan, approval by elicitation, execution with progress: the approval and execution views."""
    progress: list[float] = []

    async def on_progress(done: float, _total: float | None, _message: str | None) -> None:
        progress.append(done)

    await make_project(client)
    plan_id = await make_plan(client, vpc_stack(subnets=1))
    approved = await call_ok(client, "approve_plan", {"plan_id": plan_id})
    outcome, _ = await _execute(client, plan_id, progress_callback=on_progress)
    return approved, outcome, progress


async def test_a_client_of_the_2026_protocol_needs_no_affinity_every_request_may_reach_another_replica(
    cluster: Cluster,
) -> None:
    """Protocol 2026-07-28 has no sessions: each request stands alone, and an elicitation's answer comes
    back as a new request carrying the sealed request state, which any replica can open (they share
    the key). Here every single request goes to the next replica."""
    human = Human()
    with Balancer([r.base_url for r in cluster.replicas], "round-robin") as balancer:
        async with Client(f"{balancer.url}/mcp", elicitation_callback=cast(ElicitationFnT, human)) as client:
            approved, outcome, progress = await _whole_loop(client)
    assert approved["outcome"] == "approved"
    assert len(human.prompts) == 1
    assert outcome == "executed"
    assert progress
    assert len(balancer.served) == 3


async def test_a_client_of_the_2025_protocol_loses_its_session_without_affinity(cluster: Cluster) -> None:
    """2025 revisions keep a session in the memory of the replica that issued its Mcp-Session-Id:
    another replica answers 404 for it (the SDK's 'Session not found')."""
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
    }
    list_tools = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    with Balancer([r.base_url for r in cluster.replicas], "round-robin") as balancer:
        async with httpx2.AsyncClient(base_url=balancer.url, timeout=30) as http:
            opened = await http.post("/mcp", json=initialize, headers=headers)
            session = {
                **headers,
                "Mcp-Session-Id": opened.headers["mcp-session-id"],
                "Mcp-Protocol-Version": "2025-06-18",
            }
            elsewhere = await http.post("/mcp", json=list_tools, headers=session)
    assert opened.status_code == 200
    assert elsewhere.status_code == 404


async def test_a_client_of_the_2025_protocol_works_with_affinity_on_the_session_header(cluster: Cluster) -> None:
    human = Human()
    with Balancer([r.base_url for r in cluster.replicas], "session") as balancer:
        async with Client(
            f"{balancer.url}/mcp", mode="legacy", elicitation_callback=cast(ElicitationFnT, human)
        ) as client:
            approved, outcome, progress = await _whole_loop(client)
        async with Client(f"{balancer.url}/mcp", mode="legacy") as other_session:
            listed = await call_ok(other_session, "list_projects")  # a new session, on the next replica
    assert (approved["outcome"], outcome) == ("approved", "executed")
    assert progress
    assert [p["project_id"] for p in listed["projects"]] == ["web"]
    assert len(balancer.served) == 2


def _haproxy_config(replicas: list[HttpServer], port: int) -> str:
    """deploy/haproxy.cfg as shipped, with the replicas of this test instead of Docker's DNS."""
    shipped = (Path(__file__).resolve().parents[2] / "deploy" / "haproxy.cfg").read_text()
    servers = "\n".join(
        f"    server replica{i} {r.base_url.removeprefix('http://')} check" for i, r in enumerate(replicas)
    )
    config = shipped.replace(
        "    server-template replica 10 infra-mcp:8000 check resolvers docker init-addr none", servers
    )
    config = config.replace("    bind :8080", f"    bind 127.0.0.1:{port}")
    config = config.replace("resolvers docker\n    nameserver dns 127.0.0.11:53\n    hold valid 10s\n", "")
    assert servers in config
    assert f"bind 127.0.0.1:{port}" in config
    return config


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed (apt-get install haproxy)")
async def test_the_shipped_haproxy_config_keeps_2025_sessions_on_their_replica(
    cluster: Cluster, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(_haproxy_config(cluster.replicas, port))
    checked = subprocess.run(["haproxy", "-c", "-f", str(config)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    balancer = subprocess.Popen(
        ["haproxy", "-db", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        with anyio.fail_after(10):
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
                await anyio.sleep(0.1)
        human = Human()
        url = f"http://127.0.0.1:{port}/mcp"
        async with Client(url, mode="legacy", elicitation_callback=cast(ElicitationFnT, human)) as client:
            approved, outcome, progress = await _whole_loop(client)
        async with Client(url, elicitation_callback=cast(ElicitationFnT, Human())) as modern:
            listed = await call_ok(modern, "list_projects")
    finally:
        balancer.terminate()
        balancer.wait(10)
    assert (approved["outcome"], outcome) == ("approved", "executed")
    assert progress
    assert [p["project_id"] for p in listed["projects"]] == ["web"]


async def test_a_replica_started_during_an_execution_serves_reads_and_leaves_the_execution_alone(
    slower_cluster: Cluster,
) -> None:
    """A rolling restart: a replica starting while another executes checks every project in the
    background; the running execution holds the lock, so the newcomer defers to it, and its reads
    answer meanwhile."""
    desired = vpc_stack(subnets=2)
    async with slower_cluster.client(0) as first:
        await make_project(first)
        plan_id = await make_plan(first, desired)
        await call_ok(first, "approve_plan", {"plan_id": plan_id})
    under_way = anyio.Event()
    results: dict[str, Any] = {}

    async def progress(done: float, _total: float | None, _message: str | None) -> None:
        under_way.set()

    async def execute() -> None:
        async with slower_cluster.client(0) as client:
            results["execution"] = (await _execute(client, plan_id, progress_callback=progress))[0]

    async with anyio.create_task_group() as tg:
        tg.start_soon(execute)
        with anyio.fail_after(60):
            await under_way.wait()
        with http_server(slower_cluster.data_dir, **slower_cluster.env) as newcomer:
            async with Client(newcomer.mcp_url) as client:
                results["status"] = (await call_ok(client, "get_plan", {"plan_id": plan_id}))["status"]
                results["listed"] = await call_ok(client, "list_resources", {"project_id": "web"})
                results["still_running"] = "execution" not in results
            said = newcomer.stderr
    assert results["execution"] == "executed"
    assert results["still_running"], "the execution ended before the newcomer was asked: make it longer"
    assert results["status"] == "executing"
    assert results["listed"]["total_in_state"] < len(desired["resources"])
    assert "reconciled_interrupted_execution" not in said


class _ListChanged:
    """Counts resources list-changed signals reaching one client, on either protocol era."""

    def __init__(self) -> None:
        self.changed = anyio.Event()

    async def on_message(self, message: Any) -> None:  # 2025 revisions: a notification on the session
        if isinstance(message, ResourceListChangedNotification):
            self.changed.set()

    async def wait(self) -> None:
        with anyio.fail_after(15):
            await self.changed.wait()
        self.changed = anyio.Event()


@pytest.mark.parametrize("mode", ["legacy", "auto"], ids=["2025-11-25", "2026-07-28"])
async def test_a_plan_made_on_one_replica_is_announced_to_sessions_on_another(cluster: Cluster, mode: str) -> None:
    """infra://plans/pending changes reach a member's client connected to another replica (PostgreSQL
    LISTEN/NOTIFY between replicas), not only the clients of the replica where the plan was made."""
    watch = _ListChanged()
    async with cluster.client(0) as author:
        await make_project(author)
        async with (
            Client(cluster.replicas[1].mcp_url, message_handler=watch.on_message, mode=mode, cache=None) as watcher,
            contextlib.AsyncExitStack() as stack,
        ):
            if watcher.session.protocol_version >= "2026":  # 2026-07-28: through subscriptions/listen
                subscription = await stack.enter_async_context(watcher.listen(resources_list_changed=True))
                tasks = await stack.enter_async_context(anyio.create_task_group())

                async def pump() -> None:
                    async for _ in subscription:
                        watch.changed.set()

                tasks.start_soon(pump)
                stack.callback(tasks.cancel_scope.cancel)
            await read_json(watcher, "infra://plans/pending")
            plan_id = await make_plan(author, vpc_stack())
            await watch.wait()
            pending = await read_json(watcher, "infra://plans/pending")
    assert [p["plan_id"] for p in pending["plans"]] == [plan_id]
