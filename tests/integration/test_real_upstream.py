"""The real ``awslabs.aws-api-mcp-server`` (pinned, started offline) pointed at ``infra-mcp sandbox --http``:
the read calls agents make through it, and infra-mcp's own health check over it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from infra_mcp.sandbox.identity import SANDBOX_ACCOUNT_ID
from infra_mcp.settings import Settings
from infra_mcp.upstream.factory import make_upstream
from infra_mcp.upstream.resilience import RetryPolicy
from tests.real_upstream import LAUNCHER, sandbox_http, upstream_env, upstream_python

pytestmark = pytest.mark.slow

COMMANDS = {
    "caller": "aws sts get-caller-identity",
    "regions": "aws ec2 describe-regions --region us-east-1",
    "zones": "aws ec2 describe-availability-zones --region eu-west-1",
    "buckets": "aws s3api list-buckets",
}


async def _through_upstream(endpoint: str) -> dict[str, Any]:
    params = StdioServerParameters(command=upstream_python(), args=[str(LAUNCHER)], env=upstream_env(endpoint))
    seen: dict[str, Any] = {}
    async with Client(params, mode="legacy") as client:  # type: ignore[arg-type]
        for name, command in COMMANDS.items():
            result = await client.call_tool("call_aws", {"cli_command": command})
            assert result.structured_content is not None
            (entry,) = result.structured_content["result"]
            seen[name] = entry
    settings = Settings(
        data_dir=Path("/nonexistent"), upstream_command=upstream_python(), upstream_args=[str(LAUNCHER)]
    )
    async with make_upstream(
        settings, extra_env=upstream_env(endpoint), environ={}, retry=RetryPolicy.immediate(2)
    ) as upstream:
        seen["status"] = await upstream.status()
    return seen


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with sandbox_http(tmp_path_factory.mktemp("real-upstream")) as endpoint:
        yield anyio.run(_through_upstream, endpoint)


def answer(entry: dict[str, Any]) -> dict[str, Any]:
    assert entry["response"]["status_code"] == 200, entry
    return json.loads(entry["response"]["as_json"])  # type: ignore[no-any-return]


def test_sts_get_caller_identity_through_the_real_upstream_names_the_sandbox_account(seen: dict[str, Any]) -> None:
    assert answer(seen["caller"])["Account"] == SANDBOX_ACCOUNT_ID


def test_ec2_regions_and_zones_through_the_real_upstream(seen: dict[str, Any]) -> None:
    assert "eu-west-1" in {r["RegionName"] for r in answer(seen["regions"])["Regions"]}
    zones = [z["ZoneName"] for z in answer(seen["zones"])["AvailabilityZones"]]
    assert zones == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]


def test_s3_list_buckets_through_the_real_upstream(seen: dict[str, Any]) -> None:
    assert answer(seen["buckets"])["Owner"]["ID"] == SANDBOX_ACCOUNT_ID


def test_upstream_status_is_healthy_against_the_real_upstream_pointed_at_the_sandbox(seen: dict[str, Any]) -> None:
    status = seen["status"]
    assert status.healthy, status.last_error
    assert status.kind == "aws"
    assert status.caller is not None
    assert status.caller.account == SANDBOX_ACCOUNT_ID
