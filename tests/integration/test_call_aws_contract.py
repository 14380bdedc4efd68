"""Pin the ``call_aws`` contract (DESIGN §5) on the real sandbox process, over stdio.

One scripted MCP session runs every command once (a module fixture: starting a process costs a
second or two); each test then checks one promise about the answers.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.types import CallToolResult

from infra_mcp.sandbox.cloud import SandboxCloud
from infra_mcp.sandbox.config import SandboxConfig
from infra_mcp.sandbox.errors import CloudControlError

pytestmark = pytest.mark.slow

VPC = "AWS::EC2::VPC"
SECRET = "s3cr3t-never-shown"
SUCCESS_KEYS = {
    "cli_command",
    "response",
    "metadata",
    "validation_failures",
    "missing_context_failures",
    "failed_constraints",
}
RESPONSE_KEYS = {"error", "status_code", "error_code", "pagination_token", "as_json"}
METADATA_KEYS = {"service", "service_full_name", "operation", "region_name"}
PROGRESS_EVENT_KEYS = {
    "TypeName",
    "Identifier",
    "RequestToken",
    "Operation",
    "OperationStatus",
    "EventTime",
    "ResourceModel",
    "StatusMessage",
    "ErrorCode",
    "RetryAfter",
}


@contextlib.asynccontextmanager
async def sandbox_client(
    data_dir: Path, *args: str, mode: str = "legacy", env: dict[str, str] | None = None
) -> AsyncIterator[Client]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "infra_mcp.sandbox", *args],
        env={"INFRA_MCP_DATA_DIR": str(data_dir), **(env or {})},
    )
    async with Client(params, mode=mode) as client:  # type: ignore[arg-type]
        yield client


async def call(client: Client, command: str) -> CallToolResult:
    return await client.call_tool("call_aws", {"cli_command": command})


def entry(result: CallToolResult) -> dict[str, Any]:
    """The single result entry, after checking the envelope every answer shares."""
    assert result.is_error is False
    assert result.structured_content is not None
    assert list(result.structured_content) == ["result"]
    (only,) = result.structured_content["result"]
    return only  # type: ignore[no-any-return]


def aws_answer(result: CallToolResult) -> dict[str, Any]:
    response = entry(result)["response"]
    assert response["status_code"] == 200, response
    return json.loads(response["as_json"])  # type: ignore[no-any-return]


def cc(operation: str, **flags: str) -> str:
    parts = ["aws", "cloudcontrol", operation]
    for name, value in flags.items():
        parts += [f"--{name.replace('_', '-')}", shlex.quote(value)]
    return " ".join(parts)


async def _script(data_dir: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    async with sandbox_client(data_dir) as client:
        seen["tools"] = (await client.list_tools()).tools
        seen["caller"] = await call(client, "aws sts get-caller-identity")
        seen["create"] = await call(
            client,
            cc("create-resource", type_name=VPC, desired_state='{"CidrBlock": "10.0.0.0/16"}') + " --region us-east-1",
        )
        vpc = aws_answer(seen["create"])["ProgressEvent"]["Identifier"]
        seen["second_create"] = await call(
            client, cc("create-resource", type_name=VPC, desired_state='{"CidrBlock": "10.1.0.0/16"}')
        )
        token = aws_answer(seen["create"])["ProgressEvent"]["RequestToken"]
        seen["status"] = await call(client, cc("get-resource-request-status", request_token=token))
        seen["get"] = await call(client, cc("get-resource", type_name=VPC, identifier=vpc))
        tags = json.dumps([{"op": "add", "path": "/Tags", "value": [{"Key": "env", "Value": "dev"}]}])
        seen["update"] = await call(client, cc("update-resource", type_name=VPC, identifier=vpc, patch_document=tags))
        seen["list_page"] = await call(client, cc("list-resources", type_name=VPC, max_results="1"))
        next_token = aws_answer(seen["list_page"])["NextToken"]
        seen["list_rest"] = await call(
            client, cc("list-resources", type_name=VPC, max_results="1", next_token=next_token)
        )
        seen["delete"] = await call(client, cc("delete-resource", type_name=VPC, identifier=vpc))
        seen["not_found"] = await call(client, cc("get-resource", type_name=VPC, identifier=vpc))
        seen["unknown_type"] = await call(client, cc("list-resources", type_name="AWS::EC2::Nope"))
        cidr = json.dumps([{"op": "replace", "path": "/CidrBlock", "value": "10.9.0.0/16"}])
        second = aws_answer(seen["second_create"])["ProgressEvent"]["Identifier"]
        seen["create_only"] = await call(
            client, cc("update-resource", type_name=VPC, identifier=second, patch_document=cidr)
        )
        seen["invalid_state"] = await call(
            client, cc("create-resource", type_name=VPC, desired_state='{"CidrBlock": "10.0.0.0/16", "Colour": "blue"}')
        )
        db = {"DBInstanceClass": "db.t3.micro", "Engine": "postgres", "MasterUserPassword": SECRET}
        seen["write_only_create"] = await call(
            client, cc("create-resource", type_name="AWS::RDS::DBInstance", desired_state=json.dumps(db))
        )
        seen["write_only_list"] = await call(client, cc("list-resources", type_name="AWS::RDS::DBInstance"))
        seen["cli_input_json"] = await call(
            client,
            'aws cloudcontrol create-resource --cli-input-json \'{"TypeName": "AWS::EC2::VPC", "DesiredState": "{}"}\'',
        )
        seen["unparsable"] = await call(client, "aws cloudcontrol get-resource --type-name 'AWS::EC2::VPC")
        seen["unknown_flag"] = await call(client, cc("list-resources", type_name=VPC, colour="blue"))
        seen["remote_endpoint"] = await call(
            client, cc("list-resources", type_name=VPC, endpoint_url="https://example.com")
        )
    return seen


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data_dir = tmp_path_factory.mktemp("contract")
    return anyio.run(_script, data_dir)


# ---------------------------------------------------------------- the tool


def test_the_sandbox_offers_call_aws_taking_a_cli_command(session: dict[str, Any]) -> None:
    (tool,) = session["tools"]
    assert tool.name == "call_aws"
    assert tool.input_schema["required"] == ["cli_command"]
    assert tool.input_schema["properties"]["cli_command"]["type"] == "string"


# ---------------------------------------------------------------- success entries


@pytest.mark.parametrize("name", ["caller", "create", "status", "get", "update", "list_page", "delete"])
def test_a_successful_command_answers_the_full_success_entry(session: dict[str, Any], name: str) -> None:
    found = entry(session[name])
    assert set(found) == SUCCESS_KEYS
    assert set(found["response"]) == RESPONSE_KEYS
    assert {k: found["response"][k] for k in ("error", "status_code", "error_code", "pagination_token")} == {
        "error": None,
        "status_code": 200,
        "error_code": None,
        "pagination_token": None,
    }
    assert isinstance(json.loads(found["response"]["as_json"]), dict)
    assert set(found["metadata"]) >= METADATA_KEYS
    assert (found["validation_failures"], found["missing_context_failures"], found["failed_constraints"]) == (
        None,
        None,
        [],
    )


def test_metadata_names_the_service_operation_and_region_and_says_sandbox(session: dict[str, Any]) -> None:
    metadata = entry(session["create"])["metadata"]
    assert (metadata["service"], metadata["operation"], metadata["region_name"]) == (
        "cloudcontrol",
        "CreateResource",
        "us-east-1",
    )
    assert metadata["sandbox"] is True
    assert "sandbox" in metadata["service_full_name"]


def test_the_caller_is_the_sandbox_account(session: dict[str, Any]) -> None:
    identity = aws_answer(session["caller"])
    assert identity["Account"] == "000000000000"
    assert identity["Arn"] == "arn:aws:iam::000000000000:user/infra-mcp-sandbox"


@pytest.mark.parametrize("name", ["create", "status", "update", "delete"])
def test_mutations_answer_a_pascal_case_progress_event(session: dict[str, Any], name: str) -> None:
    event = aws_answer(session[name])["ProgressEvent"]
    assert set(event) <= PROGRESS_EVENT_KEYS
    assert {"TypeName", "RequestToken", "Operation", "OperationStatus", "EventTime"} <= set(event)
    assert event["OperationStatus"] == "SUCCESS"


def test_a_successful_create_carries_its_resource_model_as_a_json_string(session: dict[str, Any]) -> None:
    event = aws_answer(session["create"])["ProgressEvent"]
    assert json.loads(event["ResourceModel"])["VpcId"] == event["Identifier"]


def test_get_resource_answers_a_resource_description_with_properties_as_a_json_string(
    session: dict[str, Any],
) -> None:
    answer = aws_answer(session["get"])
    assert answer["TypeName"] == VPC
    description = answer["ResourceDescription"]
    assert set(description) == {"Identifier", "Properties"}
    assert json.loads(description["Properties"])["CidrBlock"] == "10.0.0.0/16"


def test_list_resources_pages_with_next_token_in_the_aws_answer(session: dict[str, Any]) -> None:
    first, rest = aws_answer(session["list_page"]), aws_answer(session["list_rest"])
    assert len(first["ResourceDescriptions"]) == len(rest["ResourceDescriptions"]) == 1
    assert first["ResourceDescriptions"] != rest["ResourceDescriptions"]
    assert "NextToken" not in rest


# ---------------------------------------------------------------- AWS errors


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("not_found", "ResourceNotFoundException"),
        ("unknown_type", "TypeNotFoundException"),
        ("create_only", "NotUpdatableException"),
    ],
)
def test_an_aws_error_is_reported_in_the_entry_with_its_code(session: dict[str, Any], name: str, code: str) -> None:
    found = entry(session[name])
    assert set(found) == SUCCESS_KEYS
    response = found["response"]
    assert (response["status_code"], response["error_code"]) == (400, code)
    assert response["error"].startswith(f"An error occurred ({code})")


def test_a_desired_state_the_schema_refuses_ends_failed_with_invalid_request(session: dict[str, Any]) -> None:
    event = aws_answer(session["invalid_state"])["ProgressEvent"]
    assert (event["OperationStatus"], event["ErrorCode"]) == ("FAILED", "InvalidRequest")
    assert "Colour" in event["StatusMessage"]


def test_write_only_properties_never_come_back(session: dict[str, Any]) -> None:
    for name in ("write_only_create", "write_only_list"):
        found = entry(session[name])
        assert aws_answer(session[name])
        # The entry echoes the caller's own command line (as the real server does); the answer never holds it.
        assert SECRET not in json.dumps([found["response"], found["metadata"]])


# ---------------------------------------------------------------- refused commands


@pytest.mark.parametrize("name", ["cli_input_json", "unparsable", "unknown_flag", "remote_endpoint"])
def test_a_refused_command_is_an_entry_with_only_the_command_and_a_validation_error(
    session: dict[str, Any], name: str
) -> None:
    found = entry(session[name])
    assert set(found) == {"cli_command", "error"}
    assert found["error"].startswith("Error while validating the command: ")


def test_cli_input_json_is_answered_with_the_required_flags_missing(session: dict[str, Any]) -> None:
    assert "--type-name, --desired-state" in entry(session["cli_input_json"])["error"]


# ---------------------------------------------------------------- processes, knobs, modes


async def test_two_processes_share_one_world_also_in_auto_mode(tmp_path: Path) -> None:
    latency = {"INFRA_MCP_SANDBOX_LATENCY_MS": "300"}
    async with sandbox_client(tmp_path, env=latency) as first, sandbox_client(tmp_path, mode="auto") as second:
        desired = '{"CidrBlock": "10.0.0.0/16"}'
        event = aws_answer(await call(first, cc("create-resource", type_name=VPC, desired_state=desired)))[
            "ProgressEvent"
        ]
        assert event["OperationStatus"] == "IN_PROGRESS", "the latency came from the environment"
        status = cc("get-resource-request-status", request_token=event["RequestToken"])
        for _ in range(100):
            polled = aws_answer(await call(second, status))["ProgressEvent"]
            if polled["OperationStatus"] != "IN_PROGRESS":
                break
            await anyio.sleep(0.05)
        assert polled["OperationStatus"] == "SUCCESS"
        seen = aws_answer(await call(second, cc("get-resource", type_name=VPC, identifier=event["Identifier"])))
        assert seen["ResourceDescription"]["Identifier"] == event["Identifier"]

        async def make_buckets(client: Client) -> None:
            for _ in range(10):
                await call(client, cc("create-resource", type_name="AWS::S3::Bucket", desired_state="{}"))

        async with anyio.create_task_group() as group:
            group.start_soon(make_buckets, first)
            group.start_soon(make_buckets, second)
        # The first process's creates take their 300 ms of latency before the buckets exist.
        await anyio.sleep(0.35)
        listed = aws_answer(await call(first, cc("list-resources", type_name="AWS::S3::Bucket", max_results="100")))
        assert len(listed["ResourceDescriptions"]) == 20


FAULT_KNOBS = {"throttle_rate": 0.4, "failure_rate": 0.4, "seed": 11}


def _outcome(response: dict[str, Any]) -> str:
    if response["error_code"]:
        return str(response["error_code"])
    return str(json.loads(response["as_json"])["ProgressEvent"]["OperationStatus"])


async def test_flags_set_the_fault_knobs_and_a_seed_reproduces_the_same_faults(tmp_path: Path) -> None:
    # The same seed in this process gives the sequence the subprocess must reproduce.
    local = SandboxCloud(config=SandboxConfig(**FAULT_KNOBS))  # type: ignore[arg-type]
    expected: list[str] = []
    for _ in range(15):
        try:
            expected.append(
                local.call("CreateResource", {"TypeName": "AWS::S3::Bucket", "DesiredState": "{}"})["ProgressEvent"][
                    "OperationStatus"
                ]
            )
        except CloudControlError as exc:
            expected.append(exc.code)
    flags = ["--throttle-rate", "0.4", "--failure-rate", "0.4", "--seed", "11"]
    async with sandbox_client(tmp_path, *flags) as client:
        command = cc("create-resource", type_name="AWS::S3::Bucket", desired_state="{}")
        seen = [_outcome(entry(await call(client, command))["response"]) for _ in range(15)]
    assert seen == expected
    assert {"ThrottlingException", "FAILED", "SUCCESS"} <= set(seen)
