"""The sandbox as an MCP server with the AWS API MCP server's ``call_aws`` contract (DESIGN §5).

One tool, ``call_aws(cli_command)``. Its structured result is ``{"result": [entry]}`` and the tool
call itself never fails: an AWS error or a refused command is reported inside the entry, exactly as
the real server does, so a client written against one works against the other.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from infra_mcp.sandbox.cloud import SandboxCloud
from infra_mcp.sandbox.commands import CommandError, ParsedCommand, parse_cli_command
from infra_mcp.sandbox.errors import CloudControlError
from infra_mcp.sandbox.identity import SANDBOX_ACCOUNT_ID

_log = structlog.get_logger("infra_mcp.sandbox")

INSTRUCTIONS = (
    "infra-mcp SANDBOX: a simulated AWS Cloud Control API (account 000000000000). Nothing reaches AWS. "
    "Use call_aws with 'aws cloudcontrol <create-resource|get-resource|update-resource|delete-resource|"
    "list-resources|get-resource-request-status> --flag value ...' or 'aws sts get-caller-identity'."
)


class AwsResponse(BaseModel):
    """What AWS answered: ``as_json`` on success; ``error``/``error_code``/``status_code`` on failure."""

    error: str | None = None
    status_code: int = 200
    error_code: str | None = None
    pagination_token: str | None = None
    as_json: str | None = None


class CommandMetadata(BaseModel):
    service: str
    service_full_name: str
    operation: str
    region_name: str
    sandbox: bool = Field(default=True, description="Always true: this answer comes from the infra-mcp sandbox.")


class CommandResult(BaseModel):
    """One command that was run (successfully or not, see ``response``)."""

    cli_command: str
    response: AwsResponse
    metadata: CommandMetadata
    validation_failures: list[Any] | None = None
    missing_context_failures: list[Any] | None = None
    failed_constraints: list[Any] = Field(default_factory=list)


class CommandRefused(BaseModel):
    """A command that was not run because it could not be parsed or is not allowed."""

    cli_command: str
    error: str


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def run_cli_command(cloud: SandboxCloud, cli_command: str) -> CommandResult | CommandRefused:
    """Run one ``aws ...`` command line against ``cloud`` and describe the outcome as ``call_aws`` does."""
    try:
        parsed: ParsedCommand = parse_cli_command(cli_command, default_region=cloud.config.default_region)
    except CommandError as exc:
        return CommandRefused(cli_command=cli_command, error=f"Error while validating the command: {exc}")
    metadata = CommandMetadata(
        service=parsed.service,
        service_full_name=f"{parsed.service_full_name} (infra-mcp sandbox, account {SANDBOX_ACCOUNT_ID})",
        operation=parsed.operation,
        region_name=parsed.region,
    )
    delay = cloud.config.read_delay_seconds(parsed.operation)
    if delay:
        time.sleep(delay)  # in the worker thread MCPServer runs this tool in: the event loop goes on
    try:
        answer = cloud.call(parsed.operation, parsed.params, region=parsed.region)
    except CloudControlError as exc:
        response = AwsResponse(
            error=f"An error occurred ({exc.code}) when calling the {parsed.operation} operation: {exc.message}",
            status_code=exc.status_code,
            error_code=exc.code,
        )
    except Exception:
        # A sandbox bug must look like an AWS-side failure, never a crash or a stack trace on the wire.
        _log.exception("sandbox_internal_error", operation=parsed.operation)
        response = AwsResponse(
            error=f"An error occurred (InternalFailure) when calling the {parsed.operation} operation: "
            "the infra-mcp sandbox failed unexpectedly; see its log.",
            status_code=500,
            error_code="InternalFailure",
        )
    else:
        response = AwsResponse(as_json=json.dumps(answer, default=_encode, ensure_ascii=False))
    # Debug, not info: one line per call is noise at the rates an execution polls, and costs CPU.
    _log.debug(
        "call_aws",
        operation=parsed.operation,
        region=parsed.region,
        status=response.status_code,
        error_code=response.error_code,
    )
    return CommandResult(cli_command=cli_command, response=response, metadata=metadata)


def build_server(cloud: SandboxCloud) -> MCPServer[Any]:
    """The stdio MCP server exposing ``call_aws`` over ``cloud``."""
    server: MCPServer[Any] = MCPServer(name="infra-mcp-sandbox", instructions=INSTRUCTIONS)

    @server.tool(
        name="call_aws",
        description=(
            "Run one AWS CLI command against the infra-mcp SANDBOX (simulated Cloud Control API, account "
            "000000000000; nothing reaches AWS). Pass every parameter as an explicit flag; "
            "--cli-input-json is not read. Errors are reported in each result entry."
        ),
        annotations=ToolAnnotations(title="Call the sandbox AWS API", destructive_hint=True, open_world_hint=False),
    )
    def call_aws(
        cli_command: Annotated[
            str,
            Field(
                description="A complete command line, e.g. aws cloudcontrol get-resource --type-name ... --identifier ..."
            ),
        ],
    ) -> list[CommandResult | CommandRefused]:
        # A plain function: MCPServer runs it in a worker thread, so the world file's lock never
        # blocks the event loop.
        return [run_cli_command(cloud, cli_command)]

    return server
