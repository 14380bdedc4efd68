"""One project's broken storage, or a broken upstream, never stops the server for everyone (issue 16).

The broken project's state lives in S3 behind an endpoint on 127.0.0.1 that refuses connections (a
port that was bound, then closed); later a moto server starts on that very port and the project
recovers without a restart.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from mcp.shared.exceptions import MCPError
from moto.server import ThreadedMotoServer

from infra_mcp.container import open_app
from infra_mcp.domain.project import Member, Project, ProjectSettings, Role
from tests.e2e.conftest import ClientFactory, call_error, call_ok, settings_for
from tests.e2e.loop_helpers import Human, approve, make_plan

BUCKET = {"name": "logs", "type": "AWS::S3::Bucket", "properties": {"BucketName": "ledger-logs"}}


def degraded(status: dict[str, Any]) -> list[str]:
    """The projects get_server_status reports with degraded storage."""
    return [p["project_id"] for p in status["projects"] if p["storage"] == "degraded"]


def _closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on: connections to it are refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def moto_on(port: int) -> Iterator[str]:
    """A moto S3 server on ``port`` (its buckets live in this process, so they outlive a stop)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@contextmanager
def silent_endpoint() -> Iterator[str]:
    """An endpoint on 127.0.0.1 that accepts connections and never answers (until it closes them all)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in held:  # the reads still waiting on them end now
            connection.close()
        listener.close()


@pytest.fixture
def storage() -> dict[str, Any]:
    """Settings for a team bucket behind a local endpoint, with one attempt and short timeouts per S3 call."""
    port = _closed_port()
    bucket = f"team-{uuid.uuid4().hex[:12]}"
    return {
        "port": port,
        "bucket": bucket,
        "settings": {
            "s3_endpoint_url": f"http://127.0.0.1:{port}",
            "allowed_state_locations": [f"s3://{bucket}/infra"],
            "s3_max_attempts": 1,
            "s3_connect_timeout_seconds": 2,
            "s3_read_timeout_seconds": 5,
        },
    }


async def _set_up_two_projects(connect: ClientFactory, storage: dict[str, Any]) -> None:
    """'shop' keeps its state in the default local folder; 'ledger' in the bucket, with one resource."""
    with moto_on(storage["port"]) as endpoint:
        boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint).create_bucket(Bucket=storage["bucket"])
        async with connect(settings=storage["settings"], elicitation_callback=Human()) as client:
            await call_ok(client, "create_project", {"project_id": "shop"})
            await call_ok(client, "create_project", {"project_id": "ledger"})
            location = f"s3://{storage['bucket']}/infra"
            await call_ok(client, "update_project", {"project_id": "ledger", "settings": {"state_location": location}})
            plan_id = await make_plan(client, {"resources": [BUCKET]}, "ledger")
            await approve(client, plan_id)
            assert (await call_ok(client, "execute_plan", {"plan_id": plan_id}))["status"] == "executed"


async def test_a_project_whose_storage_refuses_connections_degrades_alone_and_recovers_without_a_restart(
    connect: ClientFactory, storage: dict[str, Any]
) -> None:
    await _set_up_two_projects(connect, storage)

    # The endpoint now refuses connections; the server starts all the same.
    async with connect(settings=storage["settings"], elicitation_callback=Human()) as client:
        listed = await call_ok(client, "list_projects")
        assert sorted(p["project_id"] for p in listed["projects"]) == ["ledger", "shop"]

        # The healthy project plans, approves and executes.
        plan_id = await make_plan(client, {"resources": [{**BUCKET, "properties": {"BucketName": "shop-b"}}]}, "shop")
        await approve(client, plan_id)
        assert (await call_ok(client, "execute_plan", {"plan_id": plan_id}))["status"] == "executed"

        # The broken one answers with the storage error, naming itself and what to do.
        refused = await call_error(client, "list_resources", {"project_id": "ledger"})
        assert refused["code"] == "STATE_004"
        assert refused["details"]["degraded_project"] == "ledger"
        assert "credentials" in refused["message"]
        for tool, args in (
            ("get_state_history", {"project_id": "ledger"}),
            ("plan_changes", {"project_id": "ledger", "desired_state": {"resources": []}}),
        ):
            assert (await call_error(client, tool, args))["code"] == "STATE_004", tool
        with pytest.raises(MCPError) as caught:
            await client.read_resource("infra://projects/ledger/state")
        assert json.loads(caught.value.error.message)["code"] == "STATE_004"

        # What does not need its storage still works: its plans, its settings.
        plans = await call_ok(client, "list_plans", {"project_id": "ledger"})
        assert [p["status"] for p in plans["plans"]] == ["executed"]
        assert (await call_ok(client, "get_plan", {"plan_id": plans["plans"][0]["plan_id"]}))["status"] == "executed"
        await call_ok(client, "update_project", {"project_id": "ledger", "description": "the books"})

        # Its health shows where everyone looks.
        ledger = await call_ok(client, "get_project", {"project_id": "ledger"})
        assert ledger["health"] == "degraded"
        assert ledger["health_error"].startswith("STATE_004")
        shop = await call_ok(client, "get_project", {"project_id": "shop"})
        assert shop["health"] == "healthy"
        status = await call_ok(client, "get_server_status")
        assert degraded(status) == ["ledger"]
        assert status["pending_reconciliations"] == ["ledger"]
        assert status["upstream"]["kind"] == "sandbox"
        assert status["healthy"] is False

        # The storage answers again: the next call reconciles and serves, no restart.
        with moto_on(storage["port"]):
            recovered = await call_ok(client, "list_resources", {"project_id": "ledger"})
            assert [r["name"] for r in recovered["resources"]] == ["logs"]
            status = await call_ok(client, "get_server_status")
            assert degraded(status) == []
            assert status["pending_reconciliations"] == []
            assert {p["project_id"]: p["storage"] for p in status["projects"]} == {
                "ledger": "healthy",
                "shop": "healthy",
            }
            assert status["healthy"] is True


async def test_an_upstream_that_cannot_start_does_not_stop_the_server_from_answering(
    connect: ClientFactory,
) -> None:
    settings = {"upstream_command": "/nonexistent/aws-api-mcp-server", "upstream_timeout_seconds": 5}
    async with connect(settings=settings) as client:  # initialize answered
        await call_ok(client, "create_project", {"project_id": "web"})
        assert [p["project_id"] for p in (await call_ok(client, "list_projects"))["projects"]] == ["web"]
        assert (await call_ok(client, "list_resources", {"project_id": "web"}))["count"] == 0

        upstream = (await call_ok(client, "get_server_status"))["upstream"]
        assert upstream["healthy"] is False
        assert upstream["last_error"].startswith("AWS_MCP_001")
        status = await call_ok(client, "get_server_status")
        assert status["upstream"]["healthy"] is False
        assert status["healthy"] is False
        assert degraded(status) == []


async def test_storage_that_never_answers_is_cut_off_at_the_deadline_and_the_project_reported_degraded(
    connect: ClientFactory, data_dir: Path
) -> None:
    with silent_endpoint() as endpoint:
        location = f"s3://team-{uuid.uuid4().hex[:12]}/infra"
        settings = {
            "s3_endpoint_url": endpoint,
            "allowed_state_locations": [location],
            "s3_max_attempts": 1,
            "s3_read_timeout_seconds": 120,  # far beyond the deadline: only the deadline can end the wait
            "reconcile_deadline_seconds": 0.5,
        }
        # Written to the database directly: create_project would (rightly) read the location first.
        async with open_app(settings_for(data_dir, "alice", **settings), reconcile=False) as app:
            await app.store.create_project(
                Project(
                    id="ledger",
                    name="ledger",
                    owner="alice",
                    members=[Member(user="alice", role=Role.OWNER)],
                    settings=ProjectSettings(state_location=location),
                )
            )

        async with connect(settings=settings) as client:
            refused = await call_error(client, "list_resources", {"project_id": "ledger"})
            assert refused["code"] == "STATE_004"
            assert refused["details"]["timed_out"] is True
            assert refused["details"]["degraded_project"] == "ledger"
            ledger = await call_ok(client, "get_project", {"project_id": "ledger"})
            assert ledger["health"] == "degraded"

            await call_ok(client, "create_project", {"project_id": "shop"})
            assert (await call_ok(client, "list_resources", {"project_id": "shop"}))["count"] == 0
            status = await call_ok(client, "get_server_status")
            assert degraded(status) == ["ledger"]
