"""The upstream client against the real sandbox over stdio: the path production takes by default."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import anyio
import pytest
import stamina.instrumentation
import uvicorn

from infra_mcp.domain.cloud import OperationStatus
from infra_mcp.errors import NotFound, UpstreamAWSError, UpstreamThrottled
from infra_mcp.settings import Settings
from infra_mcp.upstream import RetryPolicy, make_upstream, wait_for_request
from infra_mcp.upstream.client import McpUpstream
from tests.fakes.aws_mcp_servers import FakeAwsAccount, call_aws_server

pytestmark = pytest.mark.slow

VPC = "AWS::EC2::VPC"
BUCKET = "AWS::S3::Bucket"
REGION = "us-east-1"


def sandbox_children() -> list[int]:
    """Pids of the sandbox processes this test process started (read from /proc, Linux)."""
    me = str(os.getpid())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if stat[1] == me and stat[0] != "Z" and b"infra_mcp.sandbox" in cmdline:
            found.append(int(entry.name))
    return found


def sandbox(tmp_path: Path, **knobs: object) -> McpUpstream:
    settings = Settings(data_dir=tmp_path, upstream_timeout_seconds=20, **knobs)  # type: ignore[arg-type]
    return make_upstream(settings, retry=RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.05))


async def test_create_poll_get_update_delete_and_errors_against_the_sandbox(tmp_path: Path) -> None:
    async with sandbox(tmp_path) as up:
        status = await up.status()
        assert (status.kind, status.dialect, status.healthy, status.connected) == ("sandbox", "call_aws", True, True)
        assert status.caller is not None
        assert status.caller.account == "000000000000"
        assert "INFRA_MCP_DATA_DIR" in status.target
        assert str(tmp_path) not in status.target, "env values are not shown, only names"

        created = await up.create_resource(VPC, {"CidrBlock": "10.0.0.0/16"}, region=REGION, client_token="ct-create")
        done = await wait_for_request(up, created, region=REGION, poll_initial=0.01, timeout=20)
        assert done.operation_status is OperationStatus.SUCCESS
        assert done.identifier is not None
        assert done.identifier.startswith("vpc-")

        got = await up.get_resource(VPC, done.identifier, region=REGION)
        assert got.properties["CidrBlock"] == "10.0.0.0/16"
        assert "DefaultSecurityGroup" in got.properties

        patch = [{"op": "add", "path": "/Tags", "value": [{"Key": "Name", "Value": "it's; $(x) \n ☃"}]}]
        updated = await up.update_resource(VPC, done.identifier, patch, region=REGION)
        assert (await wait_for_request(up, updated, region=REGION, poll_initial=0.01)).operation_status.value == (
            "SUCCESS"
        )
        got = await up.get_resource(VPC, done.identifier, region=REGION)
        assert got.properties["Tags"] == patch[0]["value"]

        page, _ = await up.list_resources(VPC, region=REGION)
        assert done.identifier in {r.identifier for r in page}

        deleted = await up.delete_resource(VPC, done.identifier, region=REGION)
        assert (await wait_for_request(up, deleted, region=REGION, poll_initial=0.01)).operation_status.value == (
            "SUCCESS"
        )

        # Errors: not found, invalid, already exists, unknown type.
        with pytest.raises(NotFound) as not_found:
            await up.get_resource(VPC, done.identifier, region=REGION)
        assert not_found.value.code == "RESOURCE_001"
        assert not_found.value.details["aws_error_code"] == "ResourceNotFoundException"

        invalid = await up.create_resource(VPC, {"Bogus": 1}, region=REGION)
        invalid = await wait_for_request(up, invalid, region=REGION, poll_initial=0.01)
        assert (invalid.operation_status, invalid.error_code) == (OperationStatus.FAILED, "InvalidRequest")

        for _ in range(2):
            bucket = await up.create_resource(BUCKET, {"BucketName": "infra-mcp-twice"}, region=REGION)
            bucket = await wait_for_request(up, bucket, region=REGION, poll_initial=0.01)
        assert (bucket.operation_status, bucket.error_code) == (OperationStatus.FAILED, "AlreadyExists")

        with pytest.raises(UpstreamAWSError) as unknown:
            await up.create_resource("AWS::Nope::Nope", {}, region=REGION)
        assert unknown.value.code == "AWS_MCP_002"
        assert unknown.value.details["aws_error_code"] == "TypeNotFoundException"


async def test_a_killed_sandbox_is_restarted_by_the_next_call(tmp_path: Path) -> None:
    async with sandbox(tmp_path) as up:
        assert (await up.caller_identity(region=REGION)).account == "000000000000"
        [first] = sandbox_children()
        os.kill(first, signal.SIGKILL)
        with anyio.fail_after(10):
            while up.connected:  # the client notices the pipe closing
                await anyio.sleep(0.05)

        # Even a mutation without a client token goes through: it is sent only on the new connection.
        created = await up.create_resource(BUCKET, {"BucketName": "after-the-crash"}, region=REGION)
        assert created.type_name == BUCKET
        [second] = sandbox_children()
        assert second != first
        status = await up.status()
        assert (status.connected, status.healthy, status.circuit) == (True, True, "closed")


async def test_sandbox_throttling_is_retried_away(tmp_path: Path) -> None:
    retried: list[BaseException] = []
    previous = stamina.instrumentation.get_on_retry_hooks()
    stamina.instrumentation.set_on_retry_hooks([lambda details: retried.append(details.caused_by)])
    try:
        async with sandbox(tmp_path, sandbox_throttle_rate=0.5, sandbox_seed=7) as up:
            for _ in range(6):
                page, token = await up.list_resources(VPC, region=REGION)
                assert (page, token) == ([], None)
    finally:
        stamina.instrumentation.set_on_retry_hooks(previous)
    assert retried, "the seed makes the sandbox throttle some of these calls"
    assert all(isinstance(exc, UpstreamThrottled) for exc in retried)
    assert sandbox_children() == [], "closing the upstream stops its process"


async def test_an_http_upstream_is_reached_over_streamable_http(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = call_aws_server(FakeAwsAccount()).streamable_http_app()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            while not server.started:
                await anyio.sleep(0.02)
        settings = Settings(data_dir=tmp_path, upstream_url=f"http://user:pw@127.0.0.1:{port}/mcp?key=s3cret")
        async with make_upstream(settings, retry=RetryPolicy.immediate()) as up:
            status = await up.status()
            assert (status.kind, status.healthy) == ("aws", True)
            assert "pw" not in status.target
            assert "s3cret" not in status.target
            created = await up.create_resource(VPC, {"CidrBlock": "10.0.0.0/16"}, region=REGION)
            assert created.operation_status is OperationStatus.IN_PROGRESS
        server.should_exit = True
