"""The catalog: resource type facts straight from the registry schemas cfn-lint ships."""

from __future__ import annotations

import subprocess
import sys

import pytest

from infra_mcp.catalog import Catalog
from infra_mcp.errors import ValidationFailed


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog()


@pytest.mark.parametrize(
    ("type_name", "identifier", "create_only", "read_only", "write_only"),
    [
        ("AWS::EC2::VPC", ["VpcId"], "CidrBlock", "DefaultSecurityGroup", None),
        ("AWS::EC2::Subnet", ["SubnetId"], "VpcId", "SubnetId", None),
        ("AWS::EC2::SecurityGroup", ["Id"], "GroupDescription", "GroupId", None),
        ("AWS::EC2::Instance", ["InstanceId"], "ImageId", "PrivateIp", None),
        ("AWS::S3::Bucket", ["BucketName"], "BucketName", "Arn", None),
        ("AWS::RDS::DBInstance", ["DBInstanceIdentifier"], "DBInstanceIdentifier", "Endpoint", "MasterUserPassword"),
        ("AWS::Lambda::Function", ["FunctionName"], "FunctionName", "Arn", None),
        ("AWS::DynamoDB::Table", ["TableName"], "TableName", "Arn", None),
        ("AWS::IAM::Role", ["RoleName"], "RoleName", "Arn", None),
        ("AWS::SQS::Queue", ["QueueUrl"], "QueueName", "Arn", None),
    ],
)
def test_a_spread_of_types_report_their_schema_facts(
    catalog: Catalog, type_name: str, identifier: list[str], create_only: str, read_only: str, write_only: str | None
) -> None:
    info = catalog.get(type_name)
    assert info.type_name == type_name
    assert info.primary_identifier == identifier
    assert create_only in info.create_only_properties
    assert any(p == read_only or p.startswith(read_only + "/") for p in info.read_only_properties)
    if write_only:
        assert write_only in info.write_only_properties
    assert info.taggable
    assert info.tag_property == "Tags"


def test_the_shorthand_and_any_letter_case_normalise_to_the_canonical_name(catalog: Catalog) -> None:
    assert catalog.normalize("EC2::VPC") == "AWS::EC2::VPC"
    assert catalog.normalize("aws::s3::bucket") == "AWS::S3::Bucket"
    assert catalog.get("EC2::VPC") is catalog.get("AWS::EC2::VPC")  # cached


def test_required_properties_and_create_only_paths_are_known(catalog: Catalog) -> None:
    sg = catalog.get("AWS::EC2::SecurityGroup")
    assert "GroupDescription" in sg.required_properties
    assert sg.is_create_only("VpcId")
    assert not sg.is_create_only("Tags")
    rds = catalog.get("AWS::RDS::DBInstance")
    assert rds.is_write_only("MasterUserPassword")


def test_an_unknown_type_is_validation_001_with_the_closest_names(catalog: Catalog) -> None:
    with pytest.raises(ValidationFailed) as caught:
        catalog.get("AWS::EC2::VPCC")
    assert caught.value.code == "VALIDATION_001"
    assert "AWS::EC2::VPC" in caught.value.details["suggestions"]


@pytest.mark.parametrize("bad", ["", "   ", "VPC", "AWS::Nope::Thing"])
def test_garbage_type_names_are_refused(catalog: Catalog, bad: str) -> None:
    with pytest.raises(ValidationFailed):
        catalog.get(bad)


def test_an_unknown_region_is_refused_with_suggestions(catalog: Catalog) -> None:
    with pytest.raises(ValidationFailed) as caught:
        catalog.get("AWS::EC2::VPC", region="us-east-9")
    assert "us-east-1" in caught.value.details["suggestions"]


def test_every_region_lists_well_over_a_thousand_types(catalog: Catalog) -> None:
    assert len(catalog.type_names("us-east-1")) > 1500
    assert "eu-west-1" in Catalog.regions()


def test_loading_is_lazy_it_neither_imports_cfn_lint_nor_reads_every_schema() -> None:
    # A fresh interpreter: importing and one look-up must not pull in the linter or all 1,850 schemas.
    code = (
        "import sys\n"
        "from infra_mcp.catalog import Catalog\n"
        "c = Catalog(); c.get('EC2::VPC')\n"
        "assert 'cfnlint' not in sys.modules, 'catalog imported cfn-lint'\n"
        "assert len(c._types) == 1, c._types\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
