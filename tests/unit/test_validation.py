"""Validation of changed resources: registry schema and cfn-lint, all findings at once, located."""

from __future__ import annotations

from typing import Any

import pytest

from infra_mcp.domain.plan import ResourceSpec
from infra_mcp.domain.validation import validate_specs
from infra_mcp.errors import ValidationFailed
from tests.unit.plan_builders import applied, catalog, plan_for, resources, subnet, vpc


def _spec(name: str, type_name: str, properties: dict[str, Any], **kw: Any) -> ResourceSpec:
    return ResourceSpec(name=name, type=type_name, properties=properties, **kw)


def _located(findings: list[Any]) -> set[tuple[str, str | None, str]]:
    return {(f.rule, f.resource, f.path) for f in findings}


def test_schema_errors_are_located_by_resource_and_property_path() -> None:
    bad = _spec("v", "AWS::EC2::VPC", {"CidrBlock": "10.0.0.0/16", "EnableDnsSupport": "maybe", "Colour": 1})
    found = _located(validate_specs([bad], catalog(), lint=False))
    assert ("schema", "v", "/properties/EnableDnsSupport") in found
    assert ("schema", "v", "/properties/Colour") in found  # located at the unexpected key, as cfn-lint does


def test_a_missing_required_property_is_located_at_that_property() -> None:
    found = _located(validate_specs([_spec("sg", "AWS::EC2::SecurityGroup", {})], catalog(), lint=False))
    assert ("schema", "sg", "/properties/GroupDescription") in found


def test_cfn_lint_findings_carry_their_rule_id_and_location() -> None:
    bad = _spec("v", "AWS::EC2::VPC", {"CidrBlock": "10.0.0.0/16", "EnableDnsSupport": "maybe"})
    findings = validate_specs([bad], catalog())
    (finding,) = [f for f in findings if f.path == "/properties/EnableDnsSupport"]
    assert (finding.rule, finding.severity, finding.resource) == ("E3012", "error", "v")


def test_all_findings_of_all_resources_are_reported_at_once() -> None:
    specs = [
        _spec("a", "AWS::EC2::VPC", {"CidrBlock": "10.0.0.0/16", "EnableDnsSupport": "maybe"}),
        _spec("b", "AWS::EC2::Instance", {"InstanceType": "t3.mega", "ImageId": "ami-12345678"}),
        _spec("c", "AWS::EC2::SecurityGroup", {}),
    ]
    resources_with_errors = {f.resource for f in validate_specs(specs, catalog()) if f.severity == "error"}
    assert resources_with_errors == {"a", "b", "c"}


def test_references_and_sealed_secrets_are_not_judged() -> None:
    specs = [
        _spec("net", "AWS::EC2::Subnet", {"VpcId": {"Ref": "web-vpc"}, "CidrBlock": "10.0.1.0/24"}),
        _spec(
            "db",
            "AWS::RDS::DBInstance",
            {
                "DBInstanceClass": "db.t3.micro",
                "Engine": "postgres",
                "AllocatedStorage": "20",
                "MasterUsername": "admin",
                "MasterUserPassword": {"__sealed__": "token", "sha256": "00"},
            },
        ),
    ]
    findings = validate_specs(specs, catalog(), neighbours={"web-vpc": ("AWS::EC2::VPC", "us-east-1")})
    assert [f for f in findings if f.severity == "error"] == []


def test_a_getatt_of_an_attribute_the_type_lacks_is_an_error() -> None:
    spec = _spec(
        "net", "AWS::EC2::Subnet", {"VpcId": {"Fn::GetAtt": ["web-vpc", "Nonsense"]}, "CidrBlock": "10.0.1.0/24"}
    )
    findings = validate_specs([spec], catalog(), neighbours={"web-vpc": ("AWS::EC2::VPC", "us-east-1")})
    assert any(f.resource == "net" and f.rule.startswith("E") for f in findings)


def test_read_only_properties_are_refused() -> None:
    found = _located(
        validate_specs(
            [_spec("v", "AWS::EC2::VPC", {"CidrBlock": "10.0.0.0/16", "DefaultNetworkAcl": "acl-1"})],
            catalog(),
            lint=False,
        )
    )
    assert ("read-only", "v", "/properties/DefaultNetworkAcl") in found


def test_tags_on_an_untaggable_type_are_refused() -> None:
    spec = _spec("p", "AWS::S3::BucketPolicy", {"Bucket": "b", "PolicyDocument": {}}, tags={"a": "b"})
    assert ("schema", "p", "/tags") in _located(validate_specs([spec], catalog(), lint=False))


def test_identical_resources_are_linted_once_and_each_gets_its_findings() -> None:
    specs = [
        _spec(f"v{i}", "AWS::EC2::VPC", {"CidrBlock": "10.0.0.0/16", "EnableDnsSupport": "maybe"}) for i in range(3)
    ]
    located = {f.resource for f in validate_specs(specs, catalog()) if f.rule == "E3012"}
    assert located == {"v0", "v1", "v2"}


def test_only_changed_resources_are_validated() -> None:
    # An invalid resource already in state (recorded before a rule existed) is not re-judged.
    broken = {**vpc("legacy"), "properties": {"CidrBlock": "10.0.0.0/16", "EnableDnsSupport": "maybe"}}
    state = applied(resources(broken))
    plan = plan_for(resources(broken, vpc("fresh", "10.1.0.0/16")), state, lint=True)
    assert [c.name for c in plan.changes] == ["fresh"]
    assert all(f.resource != "legacy" for f in plan.findings)


def test_errors_block_the_plan_listing_every_one_and_warnings_are_kept() -> None:
    with pytest.raises(ValidationFailed) as caught:
        plan_for(
            resources(
                {**vpc(), "properties": {"CidrBlock": "10.0.0.0/16", "EnableDnsSupport": "maybe"}},
                {"name": "sg", "type": "AWS::EC2::SecurityGroup", "properties": {}},
            ),
            lint=True,
        )
    assert caught.value.code == "VALIDATION_001"
    assert {f["resource"] for f in caught.value.details["findings"]} >= {"web-vpc", "sg"}

    volume = {"name": "data", "type": "AWS::EC2::Volume", "properties": {"AvailabilityZone": "us-east-1a", "Size": 10}}
    plan = plan_for(resources(volume, vpc(), subnet()), lint=True)
    assert any(f.severity == "warning" and f.resource == "data" and f.rule.startswith("W") for f in plan.findings)


def test_each_problem_is_reported_once_with_one_path_format() -> None:
    bad = _spec("v", "AWS::EC2::VPC", {"CidrBlock": "10.0.0.0/16", "Colour": 1, "Tags": [{"Key": "a"}]})
    findings = validate_specs([bad], catalog())
    paths = [f.path for f in findings if f.severity == "error"]
    assert sorted(paths) == ["/properties/Colour", "/properties/Tags/0/Value"]
