"""The upstream client end to end over in-process fake upstreams, in both dialects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp.server.mcpserver import MCPServer

from infra_mcp.domain.cloud import OperationStatus
from infra_mcp.errors import NotFound, UpstreamAWSError
from infra_mcp.settings import Settings
from infra_mcp.upstream import make_upstream, wait_for_request
from infra_mcp.upstream.client import McpUpstream
from infra_mcp.upstream.resilience import RetryPolicy
from tests.fakes.aws_mcp_servers import FakeAwsAccount, call_aws_server, refused_entry, run_script_server

VPC = "AWS::EC2::VPC"
REGION = "us-east-1"


def settings(tmp_path: Path, **kwargs: object) -> Settings:
    return Settings(data_dir=tmp_path, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(params=["call_aws", "run_script"])
def cloud_and_upstream(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[FakeAwsAccount, McpUpstream]:
    cloud = FakeAwsAccount()
    if request.param == "call_aws":
        up = make_upstream(settings(tmp_path), server=call_aws_server(cloud), retry=RetryPolicy.immediate())
    else:
        up = make_upstream(
            settings(tmp_path, upstream_dialect="run_script", upstream_command="unused"),
            server=run_script_server(cloud),
            retry=RetryPolicy.immediate(),
        )
    return cloud, up


async def test_create_wait_get_update_list_delete_round_trip(
    cloud_and_upstream: tuple[FakeAwsAccount, McpUpstream],
) -> None:
    cloud, up = cloud_and_upstream
    async with up:
        created = await up.create_resource(VPC, {"CidrBlock": "10.0.0.0/16", "Note": "it's; $(x)"}, region=REGION)
        assert created.operation_status is OperationStatus.IN_PROGRESS
        done = await wait_for_request(up, created, region=REGION, poll_initial=0.001)
        assert done.operation_status is OperationStatus.SUCCESS
        assert done.identifier is not None
        got = await up.get_resource(VPC, done.identifier, region=REGION)
        assert got.properties == {"CidrBlock": "10.0.0.0/16", "Note": "it's; $(x)"}

        patch = [{"op": "add", "path": "/Tags", "value": [{"Key": "a", "Value": "b"}]}]
        updated = await up.update_resource(VPC, done.identifier, patch, region=REGION, client_token="ct-1")
        await wait_for_request(up, updated, region=REGION, poll_initial=0.001)
        assert (await up.get_resource(VPC, done.identifier, region=REGION)).properties["Tags"] == patch[0]["value"]

        for i in range(2):
            await up.create_resource(VPC, {"CidrBlock": f"10.{i + 1}.0.0/16"}, region=REGION)
        listed, token, pages = [], None, 0
        while True:
            page, token = await up.list_resources(VPC, region=REGION, next_token=token)
            listed += page
            pages += 1
            if token is None:
                break
        assert len(listed) == 3
        assert pages == 2

        deleted = await up.delete_resource(VPC, done.identifier, region=REGION)
        assert deleted.operation == "DELETE"
        with pytest.raises(NotFound) as caught:
            await up.get_resource(VPC, done.identifier, region=REGION)
        assert caught.value.code == "RESOURCE_001"
        assert caught.value.details["aws_error_code"] == "ResourceNotFoundException"
    assert cloud.calls[0][1] == "CreateResource"


async def test_throttling_from_the_upstream_is_absorbed_by_retries(
    cloud_and_upstream: tuple[FakeAwsAccount, McpUpstream],
) -> None:
    cloud, up = cloud_and_upstream
    cloud.throttle_next = 2
    async with up:
        who = await up.caller_identity(region=REGION)
    assert who.account == "000000000000"
    assert len(cloud.calls) == 3


async def test_status_names_the_dialect_tool_and_caller(cloud_and_upstream: tuple[FakeAwsAccount, McpUpstream]) -> None:
    _, up = cloud_and_upstream
    async with up:
        status = await up.status()
    assert status.healthy
    assert status.connected
    assert status.caller is not None
    assert status.circuit == "closed"
    assert status.experimental is (status.dialect == "run_script")
    assert status.tool == ("aws___run_script" if status.dialect == "run_script" else "call_aws")
    if status.experimental:
        assert "EXPERIMENTAL" in status.note


async def test_an_injected_flag_arrives_as_part_of_one_value(tmp_path: Path) -> None:
    cloud = FakeAwsAccount()
    server = call_aws_server(cloud)
    async with make_upstream(settings(tmp_path), server=server, retry=RetryPolicy.immediate()) as up:
        with pytest.raises(UpstreamAWSError) as caught:
            await up.list_resources(VPC, region=REGION, next_token="1 --cli-input-json {} --endpoint-url http://x")
    # The server did not see a --cli-input-json flag (it would have refused); AWS saw one odd NextToken.
    assert caught.value.details["aws_error_code"] == "InvalidRequestException"
    assert cloud.calls[-1][2]["NextToken"] == "1 --cli-input-json {} --endpoint-url http://x"


async def test_a_command_the_upstream_refuses_is_aws_mcp_002_with_its_reason(tmp_path: Path) -> None:
    server = MCPServer("refuses")

    @server.tool()
    def call_aws(cli_command: str) -> list[dict[str, Any]]:
        return [refused_entry(cli_command, "The following parameters are missing: --type-name, --desired-state")]

    async with make_upstream(settings(tmp_path), server=server, retry=RetryPolicy.immediate()) as up:
        with pytest.raises(UpstreamAWSError) as caught:
            await up.create_resource(VPC, {}, region=REGION)
    assert caught.value.code == "AWS_MCP_002"
    assert caught.value.details["reason"] == "refused_by_upstream"
    assert "--desired-state" in caught.value.details["upstream_message"]


async def test_a_configured_tool_name_is_used(tmp_path: Path) -> None:
    cloud = FakeAwsAccount()
    server = call_aws_server(cloud, tool="aws___call_aws")
    async with make_upstream(settings(tmp_path, upstream_tool="aws___call_aws"), server=server) as up:
        assert (await up.caller_identity(region=REGION)).arn.endswith("user/fake")


async def test_a_wrong_tool_name_is_reported_not_retried_forever(tmp_path: Path) -> None:
    server = call_aws_server(FakeAwsAccount(), tool="something_else")
    async with make_upstream(settings(tmp_path), server=server, retry=RetryPolicy.immediate()) as up:
        with pytest.raises(UpstreamAWSError) as caught:
            await up.caller_identity(region=REGION)
    assert caught.value.code == "AWS_MCP_002"
    assert json.dumps(caught.value.details)  # details stay serialisable for the agent
