"""The call_aws and run_script answers of DESIGN §5, read into models or mapped to our errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp_types import CallToolResult, TextContent

from infra_mcp.domain.cloud import OperationStatus
from infra_mcp.errors import AccessDenied, InfraError, NotFound, UpstreamAWSError, UpstreamThrottled
from infra_mcp.upstream import operations as ops
from infra_mcp.upstream.aws_errors import is_transient, map_aws_error, split_cli_error
from infra_mcp.upstream.call_aws import CallAwsDialect
from infra_mcp.upstream.run_script import RESULT_MARKER, RunScriptDialect
from tests.fakes.aws_mcp_servers import aws_error_entry, ok_entry, refused_entry

CMD = "aws cloudcontrol get-resource --type-name AWS::EC2::VPC --identifier vpc-1 --region us-east-1"
GET = ops.get_resource("AWS::EC2::VPC", "vpc-1", region="us-east-1")
DIALECT = CallAwsDialect()

PROGRESS = {
    "TypeName": "AWS::EC2::VPC",
    "Identifier": "vpc-0abc",
    "RequestToken": "11111111-2222-3333-4444-555555555555",
    "Operation": "CREATE",
    "OperationStatus": "IN_PROGRESS",
    "EventTime": "2026-01-15T10:30:00Z",
    "ResourceModel": json.dumps({"CidrBlock": "10.0.0.0/16", "VpcId": "vpc-0abc"}),
    "RetryAfter": 1768473060.0,
}


def structured(*entries: dict[str, Any]) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(e)) for e in entries],
        structured_content={"result": list(entries)},
    )


def text_only(*entries: dict[str, Any]) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(e)) for e in entries])


def test_a_successful_entry_yields_the_parsed_as_json() -> None:
    answer = DIALECT.decode(GET, structured(ok_entry(CMD, {"TypeName": "AWS::EC2::VPC"})))
    assert answer.data == {"TypeName": "AWS::EC2::VPC"}


def test_entries_are_read_from_text_when_structured_content_is_absent() -> None:
    answer = DIALECT.decode(GET, text_only(ok_entry(CMD, {"A": 1})))
    assert answer.data == {"A": 1}


def test_a_text_answer_holding_the_whole_result_object_is_read_too() -> None:
    result = CallToolResult(content=[TextContent(type="text", text=json.dumps({"result": [ok_entry(CMD, {"B": 2})]}))])
    assert DIALECT.decode(GET, result).data == {"B": 2}


def test_a_command_the_server_refused_is_aws_mcp_002_with_the_servers_text() -> None:
    with pytest.raises(UpstreamAWSError) as caught:
        DIALECT.decode(GET, structured(refused_entry(CMD, "The following parameters are missing: --type-name")))
    assert caught.value.code == "AWS_MCP_002"
    assert "--type-name" in caught.value.details["upstream_message"]
    assert caught.value.details["reason"] == "refused_by_upstream"


@pytest.mark.parametrize("key", ["validation_failures", "missing_context_failures", "failed_constraints"])
def test_validation_and_constraint_failures_are_refusals(key: str) -> None:
    entry = ok_entry(CMD, {})
    entry[key] = [{"reason": "nope"}]
    with pytest.raises(UpstreamAWSError) as caught:
        DIALECT.decode(GET, structured(entry))
    assert caught.value.code == "AWS_MCP_002"
    assert caught.value.details["reason"] == "refused_by_upstream"


def test_every_entry_is_checked_not_only_the_first() -> None:
    bad = aws_error_entry(CMD, "AccessDeniedException", "no")
    with pytest.raises(AccessDenied):
        DIALECT.decode(GET, structured(ok_entry(CMD, {}), bad))


def test_a_tool_level_error_is_a_refusal() -> None:
    result = CallToolResult(content=[TextContent(type="text", text="Unknown tool: call_aws")], is_error=True)
    with pytest.raises(UpstreamAWSError) as caught:
        DIALECT.decode(GET, result)
    assert caught.value.code == "AWS_MCP_002"


@pytest.mark.parametrize(
    "result",
    [
        CallToolResult(content=[], structured_content={"result": []}),
        CallToolResult(content=[TextContent(type="text", text="not json")]),
        CallToolResult(content=[], structured_content={"result": ["a string"]}),
        CallToolResult(content=[], structured_content={"result": [{"cli_command": CMD}]}),
        structured({**ok_entry(CMD, {}), "response": {**ok_entry(CMD, {})["response"], "as_json": "{broken"}}),
        structured({**ok_entry(CMD, {}), "response": {**ok_entry(CMD, {})["response"], "as_json": "[1]"}}),
    ],
    ids=["no-entries", "text-not-json", "entry-not-object", "no-response", "as-json-broken", "as-json-not-object"],
)
def test_malformed_answers_are_aws_mcp_002_malformed(result: CallToolResult) -> None:
    with pytest.raises(UpstreamAWSError) as caught:
        DIALECT.decode(GET, result)
    assert caught.value.code == "AWS_MCP_002"
    assert caught.value.details["reason"] in {"malformed_answer", "refused_by_upstream"}


@pytest.mark.parametrize(
    ("aws_code", "status", "expected"),
    [
        ("ResourceNotFoundException", 404, "RESOURCE_001"),
        ("AccessDeniedException", 403, "AUTH_001"),
        ("UnauthorizedOperation", 403, "AUTH_001"),
        ("ExpiredTokenException", 400, "AUTH_001"),
        ("InvalidClientTokenId", 403, "AUTH_001"),
        ("ThrottlingException", 400, "AWS_MCP_003"),
        ("Throttling", 400, "AWS_MCP_003"),
        ("TooManyRequestsException", 429, "AWS_MCP_003"),
        ("RequestLimitExceeded", 503, "AWS_MCP_003"),
        ("InvalidRequestException", 400, "AWS_MCP_002"),
        ("AlreadyExistsException", 400, "AWS_MCP_002"),
        ("ClientTokenConflictException", 400, "AWS_MCP_002"),
        ("ServiceInternalErrorException", 500, "AWS_MCP_002"),
    ],
)
def test_aws_errors_map_to_our_codes_and_keep_aws_code_and_message(aws_code: str, status: int, expected: str) -> None:
    entry = aws_error_entry(CMD, aws_code, "what AWS said", status=status)
    with pytest.raises(InfraError) as caught:
        DIALECT.decode(GET, structured(entry))
    assert caught.value.code == expected
    assert caught.value.details["aws_error_code"] == aws_code
    assert caught.value.details["aws_message"] == "what AWS said"
    assert caught.value.details["aws_status_code"] == status


def test_an_error_code_is_recovered_from_the_cli_text_when_error_code_is_missing() -> None:
    entry = aws_error_entry(CMD, "ResourceNotFoundException", "gone")
    entry["response"]["error_code"] = None
    with pytest.raises(NotFound) as caught:
        DIALECT.decode(GET, structured(entry))
    assert caught.value.details["aws_error_code"] == "ResourceNotFoundException"


def test_an_http_error_status_alone_is_an_aws_error() -> None:
    entry = ok_entry(CMD, {})
    entry["response"]["status_code"] = 500
    with pytest.raises(UpstreamAWSError) as caught:
        DIALECT.decode(GET, structured(entry))
    assert caught.value.code == "AWS_MCP_002"
    assert is_transient(caught.value)


def test_server_side_failures_are_marked_transient_and_client_errors_are_not() -> None:
    assert is_transient(map_aws_error("InternalFailure", "x", status_code=500))
    assert not is_transient(map_aws_error("InvalidRequestException", "x", status_code=400))
    assert isinstance(map_aws_error("SlowDown", "x"), UpstreamThrottled)


def test_split_cli_error_reads_botocores_format() -> None:
    assert split_cli_error("An error occurred (Foo) when calling the GetResource operation: bar baz") == (
        "Foo",
        "bar baz",
    )
    assert split_cli_error("plain text") == (None, "plain text")


def test_a_progress_event_is_snake_cased_and_its_resource_model_json_parsed() -> None:
    event = ops.progress_event({"ProgressEvent": PROGRESS}, operation="CreateResource")
    assert event.identifier == "vpc-0abc"
    assert event.operation == "CREATE"
    assert event.operation_status is OperationStatus.IN_PROGRESS
    assert event.resource_model == {"CidrBlock": "10.0.0.0/16", "VpcId": "vpc-0abc"}
    assert event.event_time is not None
    assert event.retry_after is not None


def test_a_failed_progress_event_keeps_the_handler_error_code() -> None:
    raw = {**PROGRESS, "OperationStatus": "FAILED", "ErrorCode": "AlreadyExists", "StatusMessage": "exists"}
    event = ops.progress_event({"ProgressEvent": raw}, operation="CreateResource")
    assert event.operation_status is OperationStatus.FAILED
    assert event.error_code == "AlreadyExists"
    assert event.status_message == "exists"


@pytest.mark.parametrize(
    "response",
    [
        {},
        {"ProgressEvent": {"TypeName": "AWS::EC2::VPC"}},
        {"ProgressEvent": {**PROGRESS, "ResourceModel": "{not json"}},
        {"ProgressEvent": {**PROGRESS, "OperationStatus": "EXPLODED"}},
    ],
)
def test_an_incomplete_progress_event_is_malformed_not_a_crash(response: dict[str, Any]) -> None:
    with pytest.raises(UpstreamAWSError) as caught:
        ops.progress_event(response, operation="CreateResource")
    assert caught.value.details["reason"] == "malformed_answer"


def test_a_resource_description_parses_its_properties_string() -> None:
    raw = {"Identifier": "vpc-1", "Properties": '{"CidrBlock":"10.0.0.0/16"}'}
    desc = ops.resource_description(raw, type_name="AWS::EC2::VPC", operation="GetResource")
    assert desc.properties == {"CidrBlock": "10.0.0.0/16"}


def test_a_list_page_returns_its_next_token_or_the_upstreams_pagination_token() -> None:
    page = {"ResourceDescriptions": [{"Identifier": "a", "Properties": "{}"}], "NextToken": "n1"}
    items, token = ops.resource_page(page, type_name="AWS::S3::Bucket", pagination_token=None)
    assert [i.identifier for i in items] == ["a"]
    assert token == "n1"
    _, token = ops.resource_page({"ResourceDescriptions": []}, type_name="AWS::S3::Bucket", pagination_token="p")
    assert token == "p"
    _, token = ops.resource_page({}, type_name="AWS::S3::Bucket", pagination_token=None)
    assert token is None


def test_caller_identity_reads_sts_fields() -> None:
    who = ops.caller_identity({"UserId": "U", "Account": "123", "Arn": "arn:aws:iam::123:user/x"})
    assert (who.account, who.arn, who.user_id) == ("123", "arn:aws:iam::123:user/x", "U")
    with pytest.raises(UpstreamAWSError):
        ops.caller_identity({})


# ---- run_script ------------------------------------------------------------------------------------

RUN = RunScriptDialect()


def script_result(payload: dict[str, Any], *, wrap: bool = False) -> CallToolResult:
    line = "noise\n" + RESULT_MARKER + json.dumps(payload) + "\n"
    text = json.dumps({"stdout": line, "exit": 0}) if wrap else line
    return CallToolResult(content=[TextContent(type="text", text=text)])


def test_run_script_reads_the_marked_result_line() -> None:
    answer = RUN.decode(GET, script_result({"ok": True, "response": {"X": 1}}))
    assert answer.data == {"X": 1}


def test_run_script_reads_a_result_line_wrapped_in_json() -> None:
    answer = RUN.decode(GET, script_result({"ok": True, "response": {"X": 2}}, wrap=True))
    assert answer.data == {"X": 2}


def test_run_script_maps_aws_errors_like_call_aws() -> None:
    with pytest.raises(NotFound) as caught:
        RUN.decode(GET, script_result({"ok": False, "error_code": "ResourceNotFoundException", "message": "gone"}))
    assert caught.value.details["aws_message"] == "gone"


def test_run_script_without_a_result_line_is_malformed_and_a_tool_error_is_a_refusal() -> None:
    with pytest.raises(UpstreamAWSError) as caught:
        RUN.decode(GET, CallToolResult(content=[TextContent(type="text", text="hello")]))
    assert caught.value.details["reason"] == "malformed_answer"
    with pytest.raises(UpstreamAWSError) as caught:
        RUN.decode(GET, CallToolResult(content=[TextContent(type="text", text="denied")], is_error=True))
    assert caught.value.details["reason"] == "refused_by_upstream"
