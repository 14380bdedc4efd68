"""The sandbox's Cloud Control wire protocol, driven by a plain boto3 client."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from infra_mcp.sandbox.cloud import SandboxCloud
from infra_mcp.sandbox.config import SandboxConfig
from infra_mcp.sandbox.http import ensure_loopback, running
from infra_mcp.sandbox.main import main
from infra_mcp.sandbox.world import FileWorldStore

VPC = "AWS::EC2::VPC"
BUCKET = "AWS::S3::Bucket"


@pytest.fixture(scope="module")
def cloudcontrol(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    world = tmp_path_factory.mktemp("sandbox") / "cloud.json"
    cloud = SandboxCloud(FileWorldStore(world), config=SandboxConfig(latency_ms=50))
    with running(cloud) as endpoint:
        yield boto3.client(
            "cloudcontrol",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )


def wait(client: Any, token: str) -> dict[str, Any]:
    for _ in range(200):
        event: dict[str, Any] = client.get_resource_request_status(RequestToken=token)["ProgressEvent"]
        if event["OperationStatus"] in ("SUCCESS", "FAILED"):
            return event
        time.sleep(0.02)
    raise AssertionError("request never finished")


def error_code(call: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return str(caught.value.response["Error"]["Code"])


def test_boto3_creates_reads_updates_lists_and_deletes_a_resource(cloudcontrol: Any) -> None:
    created = cloudcontrol.create_resource(TypeName=VPC, DesiredState=json.dumps({"CidrBlock": "10.0.0.0/16"}))
    assert created["ProgressEvent"]["OperationStatus"] == "IN_PROGRESS"
    done = wait(cloudcontrol, created["ProgressEvent"]["RequestToken"])
    assert done["OperationStatus"] == "SUCCESS"
    identifier = done["Identifier"]

    described = cloudcontrol.get_resource(TypeName=VPC, Identifier=identifier)["ResourceDescription"]
    assert json.loads(described["Properties"])["VpcId"] == identifier

    patch = [{"op": "add", "path": "/Tags", "value": [{"Key": "env", "Value": "dev"}]}]
    updating = cloudcontrol.update_resource(TypeName=VPC, Identifier=identifier, PatchDocument=json.dumps(patch))
    assert wait(cloudcontrol, updating["ProgressEvent"]["RequestToken"])["OperationStatus"] == "SUCCESS"
    properties = json.loads(
        cloudcontrol.get_resource(TypeName=VPC, Identifier=identifier)["ResourceDescription"]["Properties"]
    )
    assert properties["Tags"] == [{"Key": "env", "Value": "dev"}]

    identifiers = [d["Identifier"] for d in cloudcontrol.list_resources(TypeName=VPC)["ResourceDescriptions"]]
    assert identifier in identifiers

    deleting = cloudcontrol.delete_resource(TypeName=VPC, Identifier=identifier)
    assert wait(cloudcontrol, deleting["ProgressEvent"]["RequestToken"])["OperationStatus"] == "SUCCESS"
    assert error_code(lambda: cloudcontrol.get_resource(TypeName=VPC, Identifier=identifier)) == (
        "ResourceNotFoundException"
    )


def test_boto3_sees_aws_error_codes(cloudcontrol: Any) -> None:
    assert error_code(lambda: cloudcontrol.get_resource(TypeName=VPC, Identifier="vpc-0")) == (
        "ResourceNotFoundException"
    )
    assert error_code(lambda: cloudcontrol.list_resources(TypeName="AWS::EC2::Nope")) == "TypeNotFoundException"
    patch = json.dumps([{"op": "replace", "path": "/BucketName", "value": "other"}])
    name = "boto3-bucket"
    wait(
        cloudcontrol,
        cloudcontrol.create_resource(TypeName=BUCKET, DesiredState=json.dumps({"BucketName": name}))["ProgressEvent"][
            "RequestToken"
        ],
    )
    assert error_code(lambda: cloudcontrol.update_resource(TypeName=BUCKET, Identifier=name, PatchDocument=patch)) == (
        "NotUpdatableException"
    )
    again = cloudcontrol.create_resource(TypeName=BUCKET, DesiredState=json.dumps({"BucketName": name}))
    failed = wait(cloudcontrol, again["ProgressEvent"]["RequestToken"])
    assert (failed["OperationStatus"], failed["ErrorCode"]) == ("FAILED", "AlreadyExists")


def test_boto3_retries_of_a_create_reuse_its_client_token(cloudcontrol: Any) -> None:
    desired = json.dumps({"BucketName": "idempotent-bucket"})
    first = cloudcontrol.create_resource(TypeName=BUCKET, DesiredState=desired, ClientToken="retry-1")
    again = cloudcontrol.create_resource(TypeName=BUCKET, DesiredState=desired, ClientToken="retry-1")
    assert again["ProgressEvent"]["RequestToken"] == first["ProgressEvent"]["RequestToken"]


def test_answers_say_they_come_from_the_sandbox(cloudcontrol: Any) -> None:
    answer = cloudcontrol.list_resources(TypeName=VPC)
    assert answer["ResponseMetadata"]["HTTPHeaders"]["x-infra-mcp-sandbox"] == "true"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])  # noqa: S104 - refused on purpose
def test_the_http_server_refuses_non_loopback_addresses(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        ensure_loopback(host)


def test_the_entry_point_refuses_a_non_loopback_bind(tmp_path: Path) -> None:
    assert main(["--http", "0.0.0.0:8080", "--data-dir", str(tmp_path)]) == 2


def test_boto3_pages_through_list_resources_with_max_results_and_next_token(cloudcontrol: Any) -> None:
    names = sorted(f"paged-{i:02d}" for i in range(7))
    for name in names:
        wait(
            cloudcontrol,
            cloudcontrol.create_resource(TypeName=BUCKET, DesiredState=json.dumps({"BucketName": name}))[
                "ProgressEvent"
            ]["RequestToken"],
        )
    pages = list(
        cloudcontrol.get_paginator("list_resources").paginate(TypeName=BUCKET, PaginationConfig={"PageSize": 3})
    )
    seen = [d["Identifier"] for page in pages for d in page["ResourceDescriptions"] if d["Identifier"] in names]
    assert seen == names
    assert all(len(page["ResourceDescriptions"]) <= 3 for page in pages)
    assert "NextToken" in pages[0]
    assert "NextToken" not in pages[-1]
    assert error_code(lambda: cloudcontrol.list_resources(TypeName=BUCKET, MaxResults=101)) == "InvalidRequestException"
