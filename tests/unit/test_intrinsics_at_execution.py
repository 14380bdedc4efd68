"""Symbolic values left by planning are evaluated during execution, once their targets exist."""

from __future__ import annotations

import pytest

from infra_mcp.domain.payload import UnresolvedReference, dependencies_of, resolve
from infra_mcp.domain.refs import reference_targets, scan_targets
from infra_mcp.domain.state import StateResource

BUCKET = StateResource(
    name="Bucket",
    type="AWS::S3::Bucket",
    region="us-east-1",
    id="my-bucket",
    properties={"Arn": "arn:aws:s3:::my-bucket", "BucketName": "my-bucket"},
)
VPC = StateResource(
    name="Vpc", type="AWS::EC2::VPC", region="us-east-1", id="vpc-1", properties={"CidrBlock": "10.0.0.0/16"}
)


def test_a_sub_over_another_resources_attribute_is_a_dependency() -> None:
    value = {"Resource": {"Fn::Sub": "${Bucket.Arn}/*"}, "Other": {"Fn::Sub": ["${X}", {"X": {"Ref": "Vpc"}}]}}
    assert reference_targets(value) == {"Bucket", "Vpc"}
    assert scan_targets(value) == ({"Bucket", "Vpc"}, False)
    assert dependencies_of(value, []) == {"Bucket", "Vpc"}


def test_execution_resolves_sub_join_and_cidr_in_dependency_order() -> None:
    value = {
        "Resource": {"Fn::Sub": "${Bucket.Arn}/*"},
        "Name": {"Fn::Join": ["-", [{"Ref": "Bucket"}, "logs"]]},
        "CidrBlock": {"Fn::Select": [1, {"Fn::Cidr": [{"Fn::GetAtt": ["Vpc", "CidrBlock"]}, 2, 8]}]},
        "Region": {"Ref": "AWS::Region"},
    }
    resolved = resolve(value, {"Bucket": BUCKET, "Vpc": VPC}, region="eu-west-1")
    assert resolved == {
        "Resource": "arn:aws:s3:::my-bucket/*",
        "Name": "my-bucket-logs",
        "CidrBlock": "10.0.1.0/24",
        "Region": "eu-west-1",
    }


def test_execution_refuses_a_sub_whose_target_does_not_exist_yet() -> None:
    with pytest.raises(UnresolvedReference):
        resolve({"Resource": {"Fn::Sub": "${Bucket.Arn}/*"}}, {}, region="us-east-1")
