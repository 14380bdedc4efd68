"""Drift comparison: declared vs live, property by property (domain/drift, no I/O)."""

from __future__ import annotations

from typing import Any

from infra_mcp.catalog import default_catalog
from infra_mcp.domain.drift import compare, with_live_values, writable_model
from infra_mcp.domain.sealed import DIGEST_KEY
from infra_mcp.domain.typefacts import TypeFacts, type_facts


def facts(type_name: str) -> TypeFacts:
    return type_facts(default_catalog(), type_name, "us-east-1")


def drift(
    type_name: str, declared: dict[str, Any], live: dict[str, Any], tags: dict[str, str] | None = None
) -> tuple[list[tuple[str, Any, Any]], list[str]]:
    found, skipped = compare(declared, live, facts(type_name), tags=tags)
    return [(d.path, d.expected, d.actual) for d in found], skipped


def test_an_identical_resource_is_in_sync() -> None:
    assert drift("AWS::EC2::VPC", {"CidrBlock": "10.0.0.0/16"}, {"CidrBlock": "10.0.0.0/16"}) == ([], [])


def test_aws_defaults_nobody_declared_are_not_drift() -> None:
    live = {"CidrBlock": "10.0.0.0/16", "EnableDnsSupport": True, "InstanceTenancy": "default"}
    assert drift("AWS::EC2::VPC", {"CidrBlock": "10.0.0.0/16"}, live) == ([], [])


def test_a_changed_declared_value_is_drift_with_expected_and_actual() -> None:
    found, _ = drift(
        "AWS::EC2::VPC",
        {"CidrBlock": "10.0.0.0/16", "EnableDnsSupport": True},
        {"CidrBlock": "10.0.0.0/16", "EnableDnsSupport": False},
    )
    assert found == [("/EnableDnsSupport", True, False)]


def test_a_declared_property_gone_live_is_drift_with_no_actual_value() -> None:
    found, _ = drift(
        "AWS::EC2::VPC", {"CidrBlock": "10.0.0.0/16", "EnableDnsHostnames": True}, {"CidrBlock": "10.0.0.0/16"}
    )
    assert found == [("/EnableDnsHostnames", True, None)]


def test_read_only_attributes_are_never_drift() -> None:
    declared = {"CidrBlock": "10.0.0.0/16", "VpcId": "vpc-old", "DefaultSecurityGroup": "sg-1"}
    live = {"CidrBlock": "10.0.0.0/16", "VpcId": "vpc-new", "DefaultSecurityGroup": "sg-2"}
    assert drift("AWS::EC2::VPC", declared, live) == ([], [])


def test_write_only_properties_cannot_be_compared_and_are_listed_as_such() -> None:
    declared = {
        "DBInstanceClass": "db.t3.micro",
        "MasterUserPassword": {DIGEST_KEY: "ab" * 32},
        "AllowMajorVersionUpgrade": True,
    }
    found, skipped = drift("AWS::RDS::DBInstance", declared, {"DBInstanceClass": "db.t3.micro"})
    assert found == []
    assert skipped == ["/AllowMajorVersionUpgrade", "/MasterUserPassword"]


def test_unordered_lists_are_compared_as_sets() -> None:
    rule_a = {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "CidrIp": "0.0.0.0/0"}
    rule_b = {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0"}
    declared = {"GroupDescription": "web", "SecurityGroupIngress": [rule_a, rule_b]}
    live = {"GroupDescription": "web", "SecurityGroupIngress": [rule_b, rule_a]}
    assert drift("AWS::EC2::SecurityGroup", declared, live) == ([], [])


def test_an_item_added_to_an_unordered_list_is_drift_of_the_whole_list() -> None:
    rule_a = {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "CidrIp": "0.0.0.0/0"}
    opened = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "0.0.0.0/0"}
    declared = {"GroupDescription": "web", "SecurityGroupIngress": [rule_a]}
    live = {"GroupDescription": "web", "SecurityGroupIngress": [opened, rule_a]}
    found, _ = drift("AWS::EC2::SecurityGroup", declared, live)
    assert found == [("/SecurityGroupIngress", [rule_a], [opened, rule_a])]


def test_items_of_an_unordered_list_may_carry_defaults_aws_added() -> None:
    declared = {
        "GroupDescription": "web",
        "SecurityGroupIngress": [{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80}],
    }
    live = {
        "GroupDescription": "web",
        "SecurityGroupIngress": [{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "Description": ""}],
    }
    assert drift("AWS::EC2::SecurityGroup", declared, live) == ([], [])


def test_ordered_lists_keep_their_order() -> None:
    declared = {"Code": {"ZipFile": "x"}, "Role": "r", "Layers": ["a", "b"]}
    live = {"Code": {"ZipFile": "x"}, "Role": "r", "Layers": ["b", "a"]}
    found, _ = drift("AWS::Lambda::Function", declared, live)
    assert [path for path, _, _ in found] == ["/Layers/0", "/Layers/1"]


def test_nested_values_are_compared_at_the_leaf_and_nested_defaults_ignored() -> None:
    declared = {
        "VersioningConfiguration": {"Status": "Enabled"},
        "BucketEncryption": {
            "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]
        },
    }
    live = {
        "VersioningConfiguration": {"Status": "Suspended"},
        "BucketEncryption": {
            "ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}, "BucketKeyEnabled": False}
            ]
        },
    }
    found, _ = drift("AWS::S3::Bucket", declared, live)
    assert found == [("/VersioningConfiguration/Status", "Enabled", "Suspended")]


def test_numbers_and_booleans_reported_as_strings_are_the_same_value() -> None:
    declared = {
        "GroupDescription": "web",
        "SecurityGroupIngress": [{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80}],
    }
    live = {
        "GroupDescription": "web",
        "SecurityGroupIngress": [{"IpProtocol": "tcp", "FromPort": "80", "ToPort": "80"}],
    }
    assert drift("AWS::EC2::SecurityGroup", declared, live) == ([], [])
    assert drift("AWS::EC2::VPC", {"EnableDnsSupport": True}, {"EnableDnsSupport": "true"}) == ([], [])


def test_tags_are_compared_by_key_and_aws_tags_are_never_drift() -> None:
    live = {
        "CidrBlock": "10.0.0.0/16",
        "Tags": [
            {"Key": "team", "Value": "ops"},
            {"Key": "env", "Value": "prod"},
            {"Key": "aws:cf:stack", "Value": "x"},
        ],
    }
    found, _ = drift("AWS::EC2::VPC", {"CidrBlock": "10.0.0.0/16"}, live, tags={"env": "dev"})
    assert found == [("/Tags/env", "dev", "prod"), ("/Tags/team", None, "ops")]


def test_live_tags_on_a_resource_declared_without_tags_are_not_drift() -> None:
    live = {"CidrBlock": "10.0.0.0/16", "Tags": [{"Key": "team", "Value": "ops"}]}
    assert drift("AWS::EC2::VPC", {"CidrBlock": "10.0.0.0/16"}, live, tags={}) == ([], [])


def test_live_values_replace_the_drifted_paths_only() -> None:
    declared = {"VpcId": {"Ref": "net"}, "CidrBlock": "10.0.1.0/24", "Nested": {"A": 1, "B": 2}}
    properties, tags = with_live_values(
        declared,
        {"env": "dev", "gone": "x"},
        {"/Nested/A": 5, "/CidrBlock": None, "/Tags/env": "prod", "/Tags/gone": None},
    )
    assert properties == {"VpcId": {"Ref": "net"}, "Nested": {"A": 5, "B": 2}}
    assert tags == {"env": "prod"}
    assert declared["Nested"] == {"A": 1, "B": 2}  # the input is left alone


def test_an_imported_model_keeps_only_what_a_person_could_have_written() -> None:
    live = {
        "CidrBlock": "10.9.0.0/16",
        "VpcId": "vpc-123",
        "DefaultSecurityGroup": "sg-1",
        "EnableDnsSupport": True,
        "Tags": [{"Key": "env", "Value": "old"}, {"Key": "aws:cloudformation:stack-name", "Value": "s"}],
    }
    properties, tags = writable_model(live, facts("AWS::EC2::VPC"))
    assert properties == {"CidrBlock": "10.9.0.0/16", "EnableDnsSupport": True}
    assert tags == {"env": "old"}
