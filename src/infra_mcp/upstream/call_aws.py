"""The ``call_aws`` dialect: awslabs.aws-api-mcp-server and the built-in sandbox (DESIGN §5).

The tool takes ``{"cli_command": "aws ..."}`` and answers ``{"result": [entry, ...]}`` with
``isError: false`` even when the command failed, so every entry is checked.
"""

from __future__ import annotations

import json
from typing import Any

from mcp_types import CallToolResult

from infra_mcp.errors import UpstreamAWSError
from infra_mcp.upstream.aws_errors import endpoint_failure, map_aws_error, split_cli_error
from infra_mcp.upstream.commands import build_cli_command
from infra_mcp.upstream.dialects import AwsAnswer, DialectName, text_of
from infra_mcp.upstream.operations import AwsCall, malformed

# Longest upstream refusal text we copy into an error: enough to act on, never a flood.
_MAX_TEXT = 2000


class CallAwsDialect:
    """``call_aws {"cli_command": ...}``.

    Args:
        tool: The tool's name on the upstream (``call_aws`` unless configured otherwise).
    """

    name: DialectName = "call_aws"
    experimental = False

    def __init__(self, tool: str = "call_aws") -> None:
        self.tool = tool

    def encode(self, call: AwsCall) -> dict[str, Any]:
        return {"cli_command": build_cli_command(call.service, call.operation, call.params, region=call.region)}

    def decode(self, call: AwsCall, result: CallToolResult) -> AwsAnswer:
        if result.is_error:
            raise _refused(call, " ".join(text_of(result)) or "tool error without text")
        entries = _entries(result, call)
        if not entries:
            raise malformed(call.operation, "no result entries")
        answers = [_check_entry(entry, call) for entry in entries]
        return answers[0]


def _entries(result: CallToolResult, call: AwsCall) -> list[Any]:
    structured = result.structured_content
    if isinstance(structured, dict) and "result" in structured:
        found = structured["result"]
        return found if isinstance(found, list) else [found]
    # Without structuredContent the same entries arrive as JSON text, one item per entry or all at once.
    entries: list[Any] = []
    for text in text_of(result):
        try:
            value = json.loads(text)
        except ValueError:
            raise malformed(call.operation, "text content is not JSON") from None
        if isinstance(value, dict) and "result" in value:
            value = value["result"]
        entries.extend(value if isinstance(value, list) else [value])
    return entries


def _refused(call: AwsCall, text: str) -> UpstreamAWSError:
    text = text[:_MAX_TEXT]
    return UpstreamAWSError(
        f"The upstream refused the {call.operation} command: {text}. Check the upstream AWS MCP server's "
        "configuration and logs (get_server_status shows its state), then retry.",
        details={"reason": "refused_by_upstream", "operation": call.operation, "upstream_message": text},
    )


def _check_entry(entry: Any, call: AwsCall) -> AwsAnswer:
    if not isinstance(entry, dict):
        raise malformed(call.operation, "entry is not an object")
    if entry.get("error"):
        text = str(entry["error"])
        raise endpoint_failure(text) or _refused(call, text)
    for key in ("validation_failures", "missing_context_failures", "failed_constraints"):
        if entry.get(key):
            raise _refused(call, f"{key}: {json.dumps(entry[key], default=str)}")
    response = entry.get("response")
    if not isinstance(response, dict):
        raise malformed(call.operation, "entry without response")
    status = response.get("status_code")
    status_code = status if isinstance(status, int) else None
    if response.get("error") or response.get("error_code") or (status_code is not None and status_code >= 400):
        text = str(response.get("error") or "")
        if (failure := endpoint_failure(text)) is not None and not response.get("error_code"):
            raise failure
        parsed_code, message = split_cli_error(text)
        code = response.get("error_code") or parsed_code
        raise map_aws_error(
            str(code) if code else None, message or text, status_code=status_code, operation=call.operation
        )
    raw = response.get("as_json")
    if raw is None or raw == "":
        data: Any = {}
    elif isinstance(raw, str):
        try:
            data = json.loads(raw)
        except ValueError:
            raise malformed(call.operation, "as_json is not JSON") from None
    else:
        data = raw
    if not isinstance(data, dict):
        raise malformed(call.operation, "as_json is not a JSON object")
    token = response.get("pagination_token")
    return AwsAnswer(data=data, pagination_token=token if isinstance(token, str) else None)
