"""What a dialect is: how an :class:`AwsCall` becomes a tool call, and how its answer is read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from mcp_types import CallToolResult, TextContent

from infra_mcp.upstream.operations import AwsCall

DialectName = Literal["call_aws", "run_script"]


@dataclass(frozen=True)
class AwsAnswer:
    """A successful AWS response (``ResponseMetadata`` dropped) and the upstream's pagination token."""

    data: dict[str, Any]
    pagination_token: str | None = None


class Dialect(Protocol):
    """One way of asking an upstream AWS MCP server to make an AWS API call."""

    name: DialectName
    experimental: bool
    tool: str

    def encode(self, call: AwsCall) -> dict[str, Any]:
        """The tool's arguments for ``call``.

        Raises:
            ValidationFailed: VALIDATION_001 for a value that cannot be passed safely.
        """
        ...

    def decode(self, call: AwsCall, result: CallToolResult) -> AwsAnswer:
        """The AWS response in ``result``.

        Raises:
            InfraError: the mapped AWS error (see ``aws_errors.map_aws_error``), or AWS_MCP_002 when the
                upstream refused the command or answered in a shape we do not understand.
        """
        ...


def text_of(result: CallToolResult) -> list[str]:
    """The text items of a tool result (other content kinds carry nothing we read)."""
    return [item.text for item in result.content if isinstance(item, TextContent)]
