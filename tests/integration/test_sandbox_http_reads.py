"""The read calls an agent makes besides Cloud Control (STS, EC2, S3), served by the HTTP sandbox
in each service's own wire protocol and driven by plain boto3 clients."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from infra_mcp.sandbox.cloud import SandboxCloud
from infra_mcp.sandbox.http import running
from infra_mcp.sandbox.identity import SANDBOX_ACCOUNT_ID, SANDBOX_CALLER_ARN
from infra_mcp.sandbox.world import MemoryWorldStore


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with running(SandboxCloud(MemoryWorldStore())) as url:
        yield url


def client(endpoint: str, service: str, region: str = "us-east-1") -> Any:
    return boto3.client(
        service, endpoint_url=endpoint, region_name=region, aws_access_key_id="x", aws_secret_access_key="x"
    )


def test_sts_get_caller_identity_answers_the_sandbox_account_over_the_query_protocol(endpoint: str) -> None:
    answer = client(endpoint, "sts").get_caller_identity()
    assert answer["Account"] == SANDBOX_ACCOUNT_ID
    assert answer["Arn"] == SANDBOX_CALLER_ARN
    assert answer["UserId"]


def test_an_sts_operation_the_sandbox_does_not_serve_is_refused_as_an_aws_error(endpoint: str) -> None:
    with pytest.raises(ClientError) as caught:
        client(endpoint, "sts").get_session_token()
    assert caught.value.response["Error"]["Code"] == "InvalidAction"


def test_ec2_describe_regions_lists_known_regions_and_honours_region_names(endpoint: str) -> None:
    ec2 = client(endpoint, "ec2")
    names = {r["RegionName"] for r in ec2.describe_regions()["Regions"]}
    assert {"us-east-1", "eu-west-1"} <= names
    only = ec2.describe_regions(RegionNames=["eu-west-1"])["Regions"]
    assert [r["RegionName"] for r in only] == ["eu-west-1"]


def test_ec2_describe_availability_zones_lists_zones_of_the_signing_region(endpoint: str) -> None:
    zones = client(endpoint, "ec2", region="eu-west-1").describe_availability_zones()["AvailabilityZones"]
    assert [z["ZoneName"] for z in zones] == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    assert {z["State"] for z in zones} == {"available"}
    assert {z["RegionName"] for z in zones} == {"eu-west-1"}


def test_s3_list_buckets_lists_the_buckets_created_through_cloud_control(endpoint: str) -> None:
    cc = client(endpoint, "cloudcontrol")
    token = cc.create_resource(TypeName="AWS::S3::Bucket", DesiredState=json.dumps({"BucketName": "reads-b"}))[
        "ProgressEvent"
    ]["RequestToken"]
    for _ in range(100):
        if cc.get_resource_request_status(RequestToken=token)["ProgressEvent"]["OperationStatus"] == "SUCCESS":
            break
        time.sleep(0.02)
    names = [b["Name"] for b in client(endpoint, "s3").list_buckets()["Buckets"]]
    assert "reads-b" in names
