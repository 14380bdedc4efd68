"""The ``run_script`` dialect (EXPERIMENTAL): the managed AWS MCP Server via mcp-proxy-for-aws.

The tool ``aws___run_script`` takes ``{"code": "<python>"}``; the script calls
``await call_boto3(service_name=..., operation_name=..., region_name=..., params={...})``.
This has not been verified against the real service (it cannot be reached offline), so the
dialect says ``experimental`` everywhere and reads answers defensively.

Safety: the generated script is a fixed template. The only variable part is one Python string
literal (``repr`` of the JSON text of the request), decoded in the script with ``json.loads``; no
value is ever formatted into code, so no value can change what the script does.
"""

from __future__ import annotations

import json
from typing import Any

from mcp_types import CallToolResult

from infra_mcp.errors import UpstreamAWSError
from infra_mcp.upstream.aws_errors import map_aws_error
from infra_mcp.upstream.commands import compact_json
from infra_mcp.upstream.dialects import AwsAnswer, DialectName, text_of
from infra_mcp.upstream.operations import AwsCall, malformed

RESULT_MARKER = "INFRA_MCP_RESULT:"

_TEMPLATE = """\
import json
__infra_mcp_request = json.loads({request_literal})
try:
    __infra_mcp_response = await call_boto3(**__infra_mcp_request)
    if isinstance(__infra_mcp_response, dict):
        __infra_mcp_response.pop("ResponseMetadata", None)
    __infra_mcp_out = {{"ok": True, "response": __infra_mcp_response}}
except Exception as __infra_mcp_error:
    __infra_mcp_details = getattr(__infra_mcp_error, "response", None) or {{}}
    __infra_mcp_aws = __infra_mcp_details.get("Error", {{}}) if isinstance(__infra_mcp_details, dict) else {{}}
    __infra_mcp_out = {{
        "ok": False,
        "error_code": __infra_mcp_aws.get("Code") or type(__infra_mcp_error).__name__,
        "message": __infra_mcp_aws.get("Message") or str(__infra_mcp_error),
        "status_code": (__infra_mcp_details.get("ResponseMetadata") or {{}}).get("HTTPStatusCode")
        if isinstance(__infra_mcp_details, dict) else None,
    }}
print({marker_literal} + json.dumps(__infra_mcp_out, default=str))
"""


def generate_script(call: AwsCall) -> str:
    """The Python script making ``call`` through ``call_boto3``; values enter only as one string literal."""
    request = {
        "service_name": call.service,
        "operation_name": call.operation,
        "region_name": call.region,
        "params": call.present_params(),
    }
    return _TEMPLATE.format(request_literal=repr(compact_json(request)), marker_literal=repr(RESULT_MARKER))


class RunScriptDialect:
    """``aws___run_script {"code": ...}`` (EXPERIMENTAL: unverified against the managed AWS MCP Server).

    Args:
        tool: The tool's name on the upstream (``aws___run_script`` unless configured otherwise).
    """

    name: DialectName = "run_script"
    experimental = True

    def __init__(self, tool: str = "aws___run_script") -> None:
        self.tool = tool

    def encode(self, call: AwsCall) -> dict[str, Any]:
        return {"code": generate_script(call)}

    def decode(self, call: AwsCall, result: CallToolResult) -> AwsAnswer:
        texts = text_of(result)
        if isinstance(result.structured_content, dict):
            texts.append(json.dumps(result.structured_content))
        envelope = _find_envelope(texts)
        if envelope is None:
            if result.is_error:
                text = " ".join(text_of(result))[:2000] or "tool error without text"
                raise UpstreamAWSError(
                    f"The upstream refused the {call.operation} script: {text}. Check the upstream AWS MCP "
                    "server's configuration and logs (get_server_status shows its state), then retry.",
                    details={"reason": "refused_by_upstream", "operation": call.operation, "upstream_message": text},
                )
            raise malformed(call.operation, "no result line from the script")
        if envelope.get("ok") is True:
            response = envelope.get("response")
            if response is None:
                response = {}
            if not isinstance(response, dict):
                raise malformed(call.operation, "response is not an object")
            return AwsAnswer(data=response)
        code = envelope.get("error_code")
        status = envelope.get("status_code")
        raise map_aws_error(
            str(code) if code else None,
            str(envelope.get("message") or ""),
            status_code=status if isinstance(status, int) else None,
            operation=call.operation,
        )


def _find_envelope(texts: list[str]) -> dict[str, Any] | None:
    """The last ``INFRA_MCP_RESULT:{...}`` line anywhere in the answer (stdout may be wrapped or escaped)."""
    found: dict[str, Any] | None = None
    for text in texts:
        candidates = [text]
        # The proxy may return stdout inside a JSON document; unwrap string values one level.
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        candidates += _strings_in(doc)
        for candidate in candidates:
            for line in candidate.splitlines():
                start = line.find(RESULT_MARKER)
                if start < 0:
                    continue
                try:
                    value = json.loads(line[start + len(RESULT_MARKER) :])
                except ValueError:
                    continue
                if isinstance(value, dict):
                    found = value
    return found


def _strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings_in(v)]
    return []
