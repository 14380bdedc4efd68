"""Reading a CloudFormation template into desired-state entries (domain only, no server)."""

from __future__ import annotations

from typing import Any

from infra_mcp.catalog import default_catalog
from infra_mcp.domain.coerce import coerce_properties
from infra_mcp.domain.template.reader import TemplateReading, decode_template, read_template
from infra_mcp.domain.typefacts import type_facts

PSEUDO = {"AWS::Region": "us-east-1", "AWS::AccountId": "000000000000", "AWS::StackName": "web"}


def read(text: str, parameters: dict[str, Any] | None = None) -> TemplateReading:
    template, problems = decode_template(text)
    assert problems == []
    assert template is not None
    return read_template(template, parameters or {}, pseudo=PSEUDO)


def errors(reading: TemplateReading) -> dict[str, str]:
    return {f.path: f.rule for f in reading.findings if f.severity == "error"}


def test_yaml_short_tags_and_json_read_the_same() -> None:
    yaml_text = "Resources:\n  B:\n    Type: AWS::S3::Bucket\n    Properties:\n      BucketName: !Sub '${AWS::StackName}-logs'\n"
    json_text = '{"Resources": {"B": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": {"Fn::Sub": "${AWS::StackName}-logs"}}}}}'
    assert read(yaml_text).resources == read(json_text).resources
    assert read(yaml_text).resources[0]["properties"] == {"BucketName": "web-logs"}


def test_a_syntax_error_is_located_by_line() -> None:
    template, problems = decode_template("Resources:\n  B: [unclosed\n")
    assert template is None
    assert problems
    assert problems[0].rule == "template-syntax"


def test_parameters_take_defaults_and_check_allowed_values() -> None:
    text = """
Parameters:
  Env: {Type: String, AllowedValues: [dev, prod]}
  Size: {Type: Number, Default: 20, MinValue: 5}
Resources:
  Q: {Type: AWS::SQS::Queue, Properties: {QueueName: !Ref Env, DelaySeconds: !Ref Size}}
"""
    good = read(text, {"Env": "dev"})
    assert good.resources[0]["properties"] == {"QueueName": "dev", "DelaySeconds": 20}
    assert errors(read(text, {"Env": "qa"})) == {"/Parameters/Env": "parameter"}
    assert errors(read(text)) == {"/Parameters/Env": "parameter"}
    assert errors(read(text, {"Env": "dev", "Size": 1})) == {"/Parameters/Size": "parameter"}
    assert errors(read(text, {"Env": "dev", "Nope": 1})) == {"/Parameters/Nope": "parameter"}


def test_noecho_parameters_are_marked_where_they_land_even_inside_a_join() -> None:
    text = """
Parameters:
  Pw: {Type: String, NoEcho: true}
Resources:
  Db:
    Type: AWS::RDS::DBInstance
    Properties:
      MasterUserPassword: !Ref Pw
      DBName: !Join ["", [!Ref Pw, "x"]]
"""
    reading = read(text, {"Pw": "s3cret-pass"})
    assert reading.secret_paths == [("Db", "/DBName"), ("Db", "/MasterUserPassword")]


def test_condition_on_a_resource_leaves_it_out_and_depends_on_is_kept() -> None:
    text = """
Parameters:
  Env: {Type: String, Default: dev}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
Resources:
  A: {Type: AWS::SQS::Queue, Condition: IsProd}
  B: {Type: AWS::SQS::Queue, DependsOn: C}
  C: {Type: AWS::SQS::Queue, DeletionPolicy: Retain}
"""
    reading = read(text)
    assert [r["name"] for r in reading.resources] == ["B", "C"]
    assert reading.resources[0]["depends_on"] == ["C"]
    assert reading.deletion_policies == {"C": "Retain"}


def test_mappings_and_outputs() -> None:
    text = """
Mappings:
  Sizes: {dev: {Class: db.t3.micro}}
Resources:
  Q: {Type: AWS::SQS::Queue, Properties: {QueueName: !FindInMap [Sizes, dev, Class]}}
Outputs:
  Url: {Value: !Ref Q}
  Name: {Value: !FindInMap [Sizes, dev, Class]}
"""
    reading = read(text)
    assert reading.resources[0]["properties"] == {"QueueName": "db.t3.micro"}
    assert reading.outputs == {"Url": {"Ref": "Q"}, "Name": "db.t3.micro"}


def test_refusals_name_the_construct_and_its_location() -> None:
    text = """
Transform: AWS::Serverless-2016-10-31
Resources:
  F: {Type: AWS::Serverless::Function}
  C: {Type: Custom::Seeder}
  S: {Type: AWS::CloudFormation::WaitConditionHandle}
  B: {Type: AWS::S3::Bucket, Properties: {BucketName: !ImportValue shared}}
"""
    assert errors(read(text)) == {
        "/Transform": "unsupported",
        "/Resources/F/Type": "unsupported",
        "/Resources/C/Type": "unsupported",
        "/Resources/S/Type": "unsupported",
        "/Resources/B/Properties/BucketName": "unsupported",
    }


def test_scalars_are_converted_as_cloudformation_does() -> None:
    catalog = default_catalog()
    vpc = type_facts(catalog, "AWS::EC2::VPC", "us-east-1").info
    props = {"CidrBlock": "10.0.0.0/16", "EnableDnsSupport": "true", "Tags": [{"Key": "n", "Value": 1}]}
    assert coerce_properties(props, vpc) == {
        "CidrBlock": "10.0.0.0/16",
        "EnableDnsSupport": True,
        "Tags": [{"Key": "n", "Value": "1"}],
    }
    queue = type_facts(catalog, "AWS::SQS::Queue", "us-east-1").info
    assert coerce_properties({"DelaySeconds": "100", "QueueName": 256}, queue) == {
        "DelaySeconds": 100,
        "QueueName": "256",
    }
    untouched = {"DelaySeconds": {"Ref": "X"}}
    assert coerce_properties(untouched, queue) is untouched
