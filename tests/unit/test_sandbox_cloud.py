"""The simulated Cloud Control, in memory, with a fake clock: no sleeps, no files."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from infra_mcp.catalog import default_catalog
from infra_mcp.sandbox.cloud import SandboxCloud
from infra_mcp.sandbox.config import SandboxConfig
from infra_mcp.sandbox.errors import CloudControlError
from infra_mcp.sandbox.identity import SANDBOX_ACCOUNT_ID
from infra_mcp.sandbox.world import MemoryWorldStore

VPC = "AWS::EC2::VPC"
BUCKET = "AWS::S3::Bucket"
DB = "AWS::RDS::DBInstance"


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 15, 10, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_cloud(clock: FakeClock, **knobs: Any) -> SandboxCloud:
    return SandboxCloud(MemoryWorldStore(), config=SandboxConfig(**knobs), clock=clock)


@pytest.fixture
def cloud(clock: FakeClock) -> SandboxCloud:
    return make_cloud(clock)


def create(cloud: SandboxCloud, type_name: str, desired: dict[str, Any], **extra: Any) -> dict[str, Any]:
    answer = cloud.call("CreateResource", {"TypeName": type_name, "DesiredState": json.dumps(desired), **extra})
    return answer["ProgressEvent"]  # type: ignore[no-any-return]


def get_properties(cloud: SandboxCloud, type_name: str, identifier: str) -> dict[str, Any]:
    answer = cloud.call("GetResource", {"TypeName": type_name, "Identifier": identifier})
    return json.loads(answer["ResourceDescription"]["Properties"])  # type: ignore[no-any-return]


def update(cloud: SandboxCloud, type_name: str, identifier: str, patch: list[dict[str, Any]], **extra: Any) -> Any:
    params = {"TypeName": type_name, "Identifier": identifier, "PatchDocument": json.dumps(patch), **extra}
    return cloud.call("UpdateResource", params)["ProgressEvent"]


def status(cloud: SandboxCloud, token: str) -> dict[str, Any]:
    return cloud.call("GetResourceRequestStatus", {"RequestToken": token})["ProgressEvent"]  # type: ignore[no-any-return]


def api_error(call: Any) -> str:
    with pytest.raises(CloudControlError) as caught:
        call()
    return caught.value.code


# ---------------------------------------------------------------- asynchronous requests


def test_a_create_stays_in_progress_until_its_latency_has_elapsed(clock: FakeClock) -> None:
    cloud = make_cloud(clock, latency_ms=2000)
    event = create(cloud, VPC, {"CidrBlock": "10.0.0.0/16"})
    assert event["OperationStatus"] == "IN_PROGRESS"
    assert event["Operation"] == "CREATE"
    assert event["RetryAfter"] == clock.now + timedelta(seconds=2)
    clock.advance(1.999)
    assert status(cloud, event["RequestToken"])["OperationStatus"] == "IN_PROGRESS"
    clock.advance(0.001)
    done = status(cloud, event["RequestToken"])
    assert done["OperationStatus"] == "SUCCESS"
    assert json.loads(done["ResourceModel"])["CidrBlock"] == "10.0.0.0/16"


def test_a_resource_exists_only_once_its_create_request_succeeded(clock: FakeClock) -> None:
    cloud = make_cloud(clock, latency_ms=500)
    event = create(cloud, VPC, {"CidrBlock": "10.0.0.0/16"})
    code = api_error(lambda: cloud.call("GetResource", {"TypeName": VPC, "Identifier": event["Identifier"]}))
    assert code == "ResourceNotFoundException"
    clock.advance(0.5)
    assert get_properties(cloud, VPC, event["Identifier"])["VpcId"] == event["Identifier"]


def test_without_latency_a_mutation_succeeds_at_once(cloud: SandboxCloud) -> None:
    assert create(cloud, VPC, {"CidrBlock": "10.0.0.0/16"})["OperationStatus"] == "SUCCESS"


def test_latency_can_be_set_per_operation(clock: FakeClock) -> None:
    cloud = make_cloud(clock, latency_ms=0, operation_latency_ms={"delete": 3000})
    identifier = create(cloud, VPC, {"CidrBlock": "10.0.0.0/16"})["Identifier"]
    deleting = cloud.call("DeleteResource", {"TypeName": VPC, "Identifier": identifier})["ProgressEvent"]
    assert deleting["OperationStatus"] == "IN_PROGRESS"
    clock.advance(3)
    assert status(cloud, deleting["RequestToken"])["OperationStatus"] == "SUCCESS"
    code = api_error(lambda: cloud.call("GetResource", {"TypeName": VPC, "Identifier": identifier}))
    assert code == "ResourceNotFoundException"


def test_an_unknown_request_token_is_request_token_not_found(cloud: SandboxCloud) -> None:
    assert api_error(lambda: status(cloud, "nope")) == "RequestTokenNotFoundException"


def test_a_second_mutation_while_one_is_in_progress_is_a_concurrent_operation(clock: FakeClock) -> None:
    cloud = make_cloud(clock, operation_latency_ms={"update": 1000})
    identifier = create(cloud, VPC, {"CidrBlock": "10.0.0.0/16"})["Identifier"]
    update(cloud, VPC, identifier, [{"op": "add", "path": "/EnableDnsSupport", "value": True}])
    code = api_error(lambda: cloud.call("DeleteResource", {"TypeName": VPC, "Identifier": identifier}))
    assert code == "ConcurrentOperationException"


# ---------------------------------------------------------------- idempotency


def test_the_same_request_with_the_same_client_token_answers_the_same_request_and_one_resource(
    clock: FakeClock,
) -> None:
    cloud = make_cloud(clock, latency_ms=1000)
    first = create(cloud, VPC, {"CidrBlock": "10.0.0.0/16"}, ClientToken="tok-1")
    clock.advance(5)
    again = create(cloud, VPC, {"CidrBlock": "10.0.0.0/16"}, ClientToken="tok-1")
    assert again["RequestToken"] == first["RequestToken"]
    assert again["OperationStatus"] == "SUCCESS"
    listed = cloud.call("ListResources", {"TypeName": VPC})["ResourceDescriptions"]
    assert [d["Identifier"] for d in listed] == [first["Identifier"]]


def test_a_client_token_reused_for_a_different_request_is_a_conflict(cloud: SandboxCloud) -> None:
    create(cloud, VPC, {"CidrBlock": "10.0.0.0/16"}, ClientToken="tok-1")
    code = api_error(lambda: create(cloud, VPC, {"CidrBlock": "10.1.0.0/16"}, ClientToken="tok-1"))
    assert code == "ClientTokenConflictException"


def test_the_same_request_without_a_client_token_is_a_new_request(cloud: SandboxCloud) -> None:
    first = create(cloud, VPC, {"CidrBlock": "10.0.0.0/16"})
    second = create(cloud, VPC, {"CidrBlock": "10.0.0.0/16"})
    assert first["RequestToken"] != second["RequestToken"]
    assert first["Identifier"] != second["Identifier"]


# ---------------------------------------------------------------- identifiers and read-only attributes


@pytest.mark.parametrize(
    ("type_name", "desired", "prefix"),
    [
        (VPC, {"CidrBlock": "10.0.0.0/16"}, "vpc-"),
        ("AWS::EC2::Subnet", {"VpcId": "vpc-0123456789abcdef0", "CidrBlock": "10.0.1.0/24"}, "subnet-"),
        ("AWS::EC2::SecurityGroup", {"GroupDescription": "web"}, "sg-"),
        ("AWS::EC2::Instance", {"ImageId": "ami-0123456789abcdef0"}, "i-"),
        ("AWS::EC2::InternetGateway", {}, "igw-"),
    ],
)
def test_ec2_resources_get_ec2_style_identifiers(
    cloud: SandboxCloud, type_name: str, desired: dict[str, Any], prefix: str
) -> None:
    identifier = create(cloud, type_name, desired)["Identifier"]
    assert re.fullmatch(re.escape(prefix) + "[0-9a-f]{17}", identifier)


def test_a_vpc_gets_the_read_only_attributes_aws_sets(cloud: SandboxCloud) -> None:
    identifier = create(cloud, VPC, {"CidrBlock": "10.0.0.0/16"})["Identifier"]
    properties = get_properties(cloud, VPC, identifier)
    assert properties["VpcId"] == identifier
    assert properties["DefaultSecurityGroup"].startswith("sg-")
    assert properties["DefaultNetworkAcl"].startswith("acl-")
    assert properties["CidrBlockAssociations"][0].startswith("vpc-cidr-assoc-")


def test_a_security_group_id_and_group_id_agree(cloud: SandboxCloud) -> None:
    identifier = create(cloud, "AWS::EC2::SecurityGroup", {"GroupDescription": "web"})["Identifier"]
    properties = get_properties(cloud, "AWS::EC2::SecurityGroup", identifier)
    assert properties["Id"] == properties["GroupId"] == identifier


def test_a_bucket_keeps_its_given_name_and_gets_an_arn(cloud: SandboxCloud) -> None:
    event = create(cloud, BUCKET, {"BucketName": "my-demo-bucket"})
    assert event["Identifier"] == "my-demo-bucket"
    assert get_properties(cloud, BUCKET, "my-demo-bucket")["Arn"] == "arn:aws:s3:::my-demo-bucket"


def test_a_bucket_without_a_name_gets_a_generated_lowercase_name(cloud: SandboxCloud) -> None:
    identifier = create(cloud, BUCKET, {})["Identifier"]
    assert re.fullmatch(r"[a-z0-9-]{3,63}", identifier)


def test_arns_name_the_sandbox_account(cloud: SandboxCloud) -> None:
    event = create(cloud, "AWS::IAM::Role", {"RoleName": "app", "AssumeRolePolicyDocument": {}})
    arn = get_properties(cloud, "AWS::IAM::Role", event["Identifier"])["Arn"]
    assert arn == f"arn:aws:iam::{SANDBOX_ACCOUNT_ID}:role/app"


def test_a_compound_identifier_joins_its_parts_with_a_pipe(cloud: SandboxCloud) -> None:
    event = create(cloud, "AWS::IAM::RolePolicy", {"PolicyName": "p", "RoleName": "r", "PolicyDocument": {}})
    assert event["Identifier"] == "p|r"


def test_any_registry_type_can_be_asked_to_create_without_crashing(cloud: SandboxCloud) -> None:
    for type_name in default_catalog().type_names():
        event = create(cloud, type_name, {})
        # Types with required properties fail validation; every other one gets an identifier.
        assert event["OperationStatus"] in ("SUCCESS", "FAILED"), type_name
        if event["OperationStatus"] == "FAILED":
            assert event["ErrorCode"] == "InvalidRequest", type_name
        else:
            assert event["Identifier"], type_name


def test_the_caller_is_the_sandbox_account(cloud: SandboxCloud) -> None:
    identity = cloud.call("GetCallerIdentity")
    assert identity["Account"] == SANDBOX_ACCOUNT_ID
    assert identity["Arn"] == f"arn:aws:iam::{SANDBOX_ACCOUNT_ID}:user/infra-mcp-sandbox"


# ---------------------------------------------------------------- errors


def test_a_name_already_taken_fails_the_request_with_already_exists(cloud: SandboxCloud) -> None:
    create(cloud, BUCKET, {"BucketName": "taken"})
    event = create(cloud, BUCKET, {"BucketName": "taken"})
    assert event["OperationStatus"] == "FAILED"
    assert event["ErrorCode"] == "AlreadyExists"


def test_a_bucket_name_is_free_again_after_delete(cloud: SandboxCloud) -> None:
    create(cloud, BUCKET, {"BucketName": "reuse"})
    cloud.call("DeleteResource", {"TypeName": BUCKET, "Identifier": "reuse"})
    assert create(cloud, BUCKET, {"BucketName": "reuse"})["OperationStatus"] == "SUCCESS"


@pytest.mark.parametrize(
    ("desired", "named"),
    [
        ({"CidrBlock": "10.0.0.0/16", "Colour": "blue"}, "Colour"),
        ({"CidrBlock": 10}, "CidrBlock"),
        ({"CidrBlock": "10.0.0.0/16", "VpcId": "vpc-mine"}, "VpcId"),
    ],
    ids=["unknown-property", "wrong-type", "read-only-property"],
)
def test_an_invalid_desired_state_fails_with_invalid_request_naming_the_property(
    cloud: SandboxCloud, desired: dict[str, Any], named: str
) -> None:
    event = create(cloud, VPC, desired)
    assert event["OperationStatus"] == "FAILED"
    assert event["ErrorCode"] == "InvalidRequest"
    assert named in event["StatusMessage"]


def test_a_missing_required_property_fails_with_invalid_request(cloud: SandboxCloud) -> None:
    event = create(cloud, "AWS::EC2::Subnet", {"CidrBlock": "10.0.1.0/24"})
    assert (event["ErrorCode"], "VpcId" in event["StatusMessage"]) == ("InvalidRequest", True)


def test_a_desired_state_that_is_not_a_json_object_is_an_invalid_request(cloud: SandboxCloud) -> None:
    for raw in ("{not json", "[1, 2]"):
        code = api_error(lambda raw=raw: cloud.call("CreateResource", {"TypeName": VPC, "DesiredState": raw}))
        assert code == "InvalidRequestException"


@pytest.mark.parametrize("type_name", ["AWS::EC2::Vpcc", "EC2::VPC", "aws::ec2::vpc", "Custom::Thing"])
def test_an_unknown_type_is_type_not_found(cloud: SandboxCloud, type_name: str) -> None:
    assert api_error(lambda: create(cloud, type_name, {})) == "TypeNotFoundException"


@pytest.mark.parametrize("operation", ["GetResource", "DeleteResource", "UpdateResource"])
def test_an_unknown_identifier_is_resource_not_found(cloud: SandboxCloud, operation: str) -> None:
    params = {"TypeName": VPC, "Identifier": "vpc-00000000000000000", "PatchDocument": "[]"}
    if operation != "UpdateResource":
        params.pop("PatchDocument")
    assert api_error(lambda: cloud.call(operation, params)) == "ResourceNotFoundException"


# ---------------------------------------------------------------- updates


def test_an_update_applies_its_json_patch(cloud: SandboxCloud) -> None:
    identifier = create(cloud, VPC, {"CidrBlock": "10.0.0.0/16"})["Identifier"]
    event = update(
        cloud,
        VPC,
        identifier,
        [
            {"op": "add", "path": "/Tags", "value": [{"Key": "env", "Value": "dev"}]},
            {"op": "add", "path": "/EnableDnsHostnames", "value": True},
        ],
    )
    assert (event["Operation"], event["OperationStatus"]) == ("UPDATE", "SUCCESS")
    properties = get_properties(cloud, VPC, identifier)
    assert properties["Tags"] == [{"Key": "env", "Value": "dev"}]
    assert properties["EnableDnsHostnames"] is True


def test_changing_a_create_only_property_is_not_updatable(cloud: SandboxCloud) -> None:
    identifier = create(cloud, VPC, {"CidrBlock": "10.0.0.0/16"})["Identifier"]
    patch = [{"op": "replace", "path": "/CidrBlock", "value": "10.9.0.0/16"}]
    assert api_error(lambda: update(cloud, VPC, identifier, patch)) == "NotUpdatableException"
    assert get_properties(cloud, VPC, identifier)["CidrBlock"] == "10.0.0.0/16"


def test_changing_a_read_only_property_is_an_invalid_request(cloud: SandboxCloud) -> None:
    identifier = create(cloud, VPC, {"CidrBlock": "10.0.0.0/16"})["Identifier"]
    patch = [{"op": "replace", "path": "/DefaultSecurityGroup", "value": "sg-00000000000000000"}]
    assert api_error(lambda: update(cloud, VPC, identifier, patch)) == "InvalidRequestException"


@pytest.mark.parametrize(
    "patch",
    ["not json", '{"op": "add"}', '[{"op": "explode", "path": "/Tags"}]', '[{"op": "remove", "path": "/Nope"}]'],
    ids=["not-json", "not-an-array", "unknown-op", "missing-path"],
)
def test_a_malformed_patch_document_is_an_invalid_request(cloud: SandboxCloud, patch: str) -> None:
    identifier = create(cloud, VPC, {"CidrBlock": "10.0.0.0/16"})["Identifier"]
    params = {"TypeName": VPC, "Identifier": identifier, "PatchDocument": patch}
    assert api_error(lambda: cloud.call("UpdateResource", params)) == "InvalidRequestException"


def test_a_patch_that_breaks_the_schema_fails_the_request_with_invalid_request(cloud: SandboxCloud) -> None:
    identifier = create(cloud, VPC, {"CidrBlock": "10.0.0.0/16"})["Identifier"]
    event = update(cloud, VPC, identifier, [{"op": "add", "path": "/EnableDnsSupport", "value": "very"}])
    assert (event["OperationStatus"], event["ErrorCode"]) == ("FAILED", "InvalidRequest")


# ---------------------------------------------------------------- write-only properties

SECRET = "hunter2-very-secret"


def test_write_only_properties_are_never_returned_nor_kept(cloud: SandboxCloud) -> None:
    desired = {"DBInstanceClass": "db.t3.micro", "Engine": "postgres", "MasterUserPassword": SECRET}
    event = create(cloud, DB, desired)
    assert event["OperationStatus"] == "SUCCESS"
    identifier = event["Identifier"]
    answers = [
        event,
        cloud.call("GetResource", {"TypeName": DB, "Identifier": identifier}),
        cloud.call("ListResources", {"TypeName": DB}),
        update(cloud, DB, identifier, [{"op": "replace", "path": "/MasterUserPassword", "value": SECRET + "2"}]),
    ]
    for answer in answers:
        assert SECRET not in json.dumps(answer, default=str)
    with cloud.store.transaction() as txn:
        assert SECRET not in json.dumps(txn.data)


# ---------------------------------------------------------------- listing


def test_list_resources_pages_with_next_token(cloud: SandboxCloud) -> None:
    made = sorted(create(cloud, BUCKET, {"BucketName": f"bucket-{i}"})["Identifier"] for i in range(5))
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"TypeName": BUCKET, "MaxResults": 2}
        if token:
            params["NextToken"] = token
        page = cloud.call("ListResources", params)
        seen += [d["Identifier"] for d in page["ResourceDescriptions"]]
        pages += 1
        token = page.get("NextToken")
        if not token:
            break
    assert (seen, pages) == (made, 3)


def test_a_forged_next_token_is_an_invalid_request(cloud: SandboxCloud) -> None:
    code = api_error(lambda: cloud.call("ListResources", {"TypeName": BUCKET, "NextToken": "garbage"}))
    assert code == "InvalidRequestException"


# ---------------------------------------------------------------- fault knobs


def test_a_throttle_rate_of_one_throttles_every_call(clock: FakeClock) -> None:
    cloud = make_cloud(clock, throttle_rate=1.0)
    assert api_error(lambda: cloud.call("ListResources", {"TypeName": VPC})) == "ThrottlingException"
    assert api_error(lambda: create(cloud, VPC, {"CidrBlock": "10.0.0.0/16"})) == "ThrottlingException"


def test_a_failure_rate_of_one_fails_every_mutation_with_a_service_error(clock: FakeClock) -> None:
    cloud = make_cloud(clock, failure_rate=1.0)
    event = create(cloud, VPC, {"CidrBlock": "10.0.0.0/16"})
    assert event["OperationStatus"] == "FAILED"
    assert event["ErrorCode"] in ("ServiceInternalError", "GeneralServiceException")
    assert cloud.call("ListResources", {"TypeName": VPC})["ResourceDescriptions"] == []


def test_a_failure_rate_can_target_one_type(clock: FakeClock) -> None:
    cloud = make_cloud(clock, type_failure_rates={BUCKET: 1.0})
    assert create(cloud, BUCKET, {})["OperationStatus"] == "FAILED"
    assert create(cloud, VPC, {"CidrBlock": "10.0.0.0/16"})["OperationStatus"] == "SUCCESS"


def _outcomes(clock: FakeClock, seed: int) -> list[str]:
    cloud = make_cloud(clock, seed=seed, throttle_rate=0.3, failure_rate=0.3)
    outcomes = []
    for _ in range(40):
        try:
            outcomes.append(create(cloud, VPC, {"CidrBlock": "10.0.0.0/16"})["OperationStatus"])
        except CloudControlError as exc:
            outcomes.append(exc.code)
    return outcomes


def test_the_same_seed_gives_the_same_faults(clock: FakeClock) -> None:
    first = _outcomes(clock, seed=7)
    assert first == _outcomes(clock, seed=7)
    assert {"SUCCESS", "FAILED", "ThrottlingException"} <= set(first)
    assert first != _outcomes(clock, seed=8)


def test_rates_outside_zero_to_one_are_refused() -> None:
    with pytest.raises(ValueError, match="rates"):
        SandboxConfig(failure_rate=1.5)


def test_sandbox_arns_take_each_services_real_form() -> None:
    from infra_mcp.sandbox.identity import arn_for

    assert (
        arn_for("AWS::Lambda::Function", "us-east-1", "hello") == "arn:aws:lambda:us-east-1:000000000000:function:hello"
    )
    assert arn_for("AWS::SQS::Queue", "us-east-1", "q") == "arn:aws:sqs:us-east-1:000000000000:q"
    assert arn_for("AWS::EC2::VPC", "us-east-1", "vpc-1") == "arn:aws:ec2:us-east-1:000000000000:vpc/vpc-1"


def test_deleting_a_subnet_an_instance_uses_fails_like_aws_dependency_violation(cloud: SandboxCloud) -> None:
    vpc = create(cloud, VPC, {"CidrBlock": "10.0.0.0/16"})["Identifier"]
    subnet = create(cloud, "AWS::EC2::Subnet", {"VpcId": vpc, "CidrBlock": "10.0.1.0/24"})["Identifier"]
    instance = create(cloud, "AWS::EC2::Instance", {"ImageId": "ami-12345678", "SubnetId": subnet})["Identifier"]
    refused = cloud.call("DeleteResource", {"TypeName": "AWS::EC2::Subnet", "Identifier": subnet})["ProgressEvent"]
    assert refused["OperationStatus"] == "FAILED"
    assert refused["ErrorCode"] == "ResourceConflict"
    assert "DependencyViolation" in refused["StatusMessage"]
    cloud.call("DeleteResource", {"TypeName": "AWS::EC2::Instance", "Identifier": instance})
    done = cloud.call("DeleteResource", {"TypeName": "AWS::EC2::Subnet", "Identifier": subnet})["ProgressEvent"]
    assert done["OperationStatus"] == "SUCCESS"


def test_an_update_does_not_fail_on_read_only_values_the_sandbox_generated(cloud: SandboxCloud) -> None:
    function = {
        "FunctionName": "f",
        "Role": "arn:aws:iam::000000000000:role/r",
        "Runtime": "python3.12",
        "Handler": "index.handler",
        "Code": {"ZipFile": "def handler(e, c): pass"},
    }
    name = create(cloud, "AWS::Lambda::Function", function)["Identifier"]
    event = update(cloud, "AWS::Lambda::Function", name, [{"op": "add", "path": "/MemorySize", "value": 256}])
    assert event["OperationStatus"] == "SUCCESS"
