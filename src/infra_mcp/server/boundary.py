"""The MCP boundary: argument errors in the project's JSON format, never the SDK's pydantic text.

The SDK validates a tool's arguments (``Tool.run``) before our ``handle_tool_errors`` wrapper runs,
and reports a failure as a ``ToolError`` whose text is pydantic's multi-line message. Overriding the
public ``MCPServer.call_tool`` is the least invasive seam that sees that error with its
``ValidationError`` cause: no private tool manager is replaced and every other path (resolvers,
output conversion, ``MCPError`` pass-through) stays the SDK's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import anyio
import structlog
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.models import InitializationOptions
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp_types import CallToolResult, InputRequiredResult
from mcp_types import Resource as MCPResource
from mcp_types import ResourceTemplate as MCPResourceTemplate
from mcp_types import Tool as MCPTool
from pydantic import ValidationError

from infra_mcp.errors import ServerStopping, ValidationFailed
from infra_mcp.server.drain import Drain
from infra_mcp.server.errors import error_payload, error_result, internal_payload
from infra_mcp.server.unparsable import relay

log = structlog.get_logger("infra_mcp.calls")

# Enough for the caller to fix its call; a hostile payload with thousands of errors or megabyte keys
# must not come back amplified.
_MAX_FINDINGS = 20
_MAX_PART = 80

# Pydantic's error type → what the field expected, in words an agent reads (never the rejected value).
_EXPECTED = {
    "missing": "a value (the argument is required)",
    "string_type": "a string",
    "string_unicode": "a valid Unicode string (no lone surrogates)",
    "string_too_long": "a shorter string",
    "string_too_short": "a longer string",
    "int_type": "an integer",
    "int_parsing": "an integer written with ASCII digits 0-9",
    "int_from_float": "a whole number",
    "greater_than_equal": "a larger number",
    "less_than_equal": "a smaller number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a JSON object",
    "list_type": "a JSON array",
    "enum": "one of the allowed values",
    "literal_error": "one of the allowed values",
    "recursion_loop": "a less deeply nested value",
}


def lean_schema(schema: Any, *, optional_nulls: bool = False) -> Any:
    """A JSON schema without what only costs an agent's context.

    Hosts put every tool's schemas in the model's context on every turn, so:

    - pydantic's generated ``title`` ("Project Id" for ``project_id``) goes: it repeats the name. A
      property *named* ``title`` survives, its value being a schema (a dict), never a string.
    - ``additionalProperties: true`` goes: it is what JSON Schema assumes without it.
    - with ``optional_nulls`` (argument schemas), an optional argument's ``anyOf: [X, null]`` with
      ``default: null`` becomes ``X``: leaving the argument out is how a caller says "none", and the
      tool still accepts an explicit null.
    """
    if isinstance(schema, list):
        return [lean_schema(v, optional_nulls=optional_nulls) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: lean_schema(v, optional_nulls=optional_nulls)
        for k, v in schema.items()
        if not (k == "title" and isinstance(v, str)) and not (k == "additionalProperties" and v is True)
    }
    options = out.get("anyOf")
    if (
        optional_nulls
        and "default" in out
        and out["default"] is None
        and isinstance(options, list)
        and len(options) == 2
        and {"type": "null"} in options
    ):
        kept = next(o for o in options if o != {"type": "null"})
        rest = {k: v for k, v in out.items() if k not in ("anyOf", "default")}
        out = {**kept, **rest}
    return out


def one_line(text: str | None) -> str | None:
    """A description from a docstring wrapped to the line length, as the one line it is."""
    return " ".join(text.split()) if text else text


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part)[:_MAX_PART] for part in loc) or "(arguments)"


def argument_error(tool: str, exc: ValidationError) -> ValidationFailed:
    """Turn the SDK's argument ``ValidationError`` into ``VALIDATION_001`` naming each field.

    The rejected values are not echoed: they are the caller's data, may be huge, and may hold
    text (lone surrogates) that cannot be encoded on the wire.
    """
    errors = exc.errors(include_input=False, include_url=False)
    findings = [
        {
            "field": _field(err["loc"]),
            "expected": _EXPECTED.get(err["type"], err["msg"][:200]),
            "problem": err["type"],
        }
        for err in errors[:_MAX_FINDINGS]
    ]
    listed = "; ".join(f"{f['field']}: expected {f['expected']}" for f in findings[:5])
    return ValidationFailed(
        f"Invalid arguments for {tool[:_MAX_PART]}: {listed}. Fix them (see the tool's input schema) and call again.",
        details={"tool": tool[:_MAX_PART], "findings": findings, "total": len(errors)},
    )


class InfraMCPServer(MCPServer[Any]):
    """``MCPServer`` whose argument validation errors are the project's ``VALIDATION_001`` JSON.

    ``after_handshake`` (if set) runs once, at the first ``tools/list`` or ``tools/call``: work that
    would slow the ``initialize`` answer if done at start-up (hosts time out slow servers) but that the
    first real call benefits from, such as loading cfn-lint in a background thread.
    """

    after_handshake: Callable[[], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Tool calls in flight, and whether a graceful stop began (see :mod:`infra_mcp.server.drain`).
        self.drain = Drain()
        # infra://plans/pending changes as plans are made and approved, and the server says so with
        # notifications/resources/list_changed: advertise it. The SDK derives the capability from
        # options each transport passes (none do), so the low-level server's default is widened here.
        lowlevel = self._lowlevel_server
        default_options = lowlevel.create_initialization_options

        def with_resource_list_changed(
            notification_options: NotificationOptions | None = None, *more: Any, **named: Any
        ) -> InitializationOptions:
            options = notification_options or NotificationOptions(resources_changed=True)
            return default_options(options, *more, **named)

        lowlevel.create_initialization_options = with_resource_list_changed  # type: ignore[method-assign]

    def _handshake_done(self) -> None:
        hook, self.after_handshake = self.after_handshake, None
        if hook is not None:
            hook()

    async def list_tools(self) -> list[MCPTool]:
        """The SDK's tool list, with lean schemas (see :func:`lean_schema`).

        Descriptions come from docstrings wrapped to the line length; they go out as one line each.
        """
        self._handshake_done()
        return [
            tool.model_copy(
                update={
                    "description": one_line(tool.description),
                    "input_schema": lean_schema(tool.input_schema, optional_nulls=True),
                    "output_schema": lean_schema(tool.output_schema) if tool.output_schema else None,
                }
            )
            for tool in await super().list_tools()
        ]

    async def list_resources(self) -> list[MCPResource]:
        """The SDK's resource list, each description on one line (they come from wrapped docstrings)."""
        return [r.model_copy(update={"description": one_line(r.description)}) for r in await super().list_resources()]

    async def list_resource_templates(self) -> list[MCPResourceTemplate]:
        """The SDK's resource templates, each description on one line."""
        return [
            t.model_copy(update={"description": one_line(t.description)})
            for t in await super().list_resource_templates()
        ]

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """Call a tool; a ``ToolError`` caused by argument validation becomes ``VALIDATION_001``.

        A crash the SDK caught outside our tool bodies becomes ``INTERNAL_001`` (logged, never shown).

        Raises:
            ToolError: Any other tool error, as the SDK raises it (our tools already answer JSON).
        """
        started = time.perf_counter()
        self._handshake_done()
        try:
            async with self.drain.call(name):
                return await super().call_tool(name, arguments, context)
        except ServerStopping as stopping:
            request_id = uuid.uuid4().hex[:16]
            log.info("tool_call", tool=name[:_MAX_PART], request_id=request_id, outcome="error", code=stopping.code)
            refused: CallToolResult = error_result(error_payload(stopping, request_id))
            return refused
        except UnexpectedToolError:
            # A bug outside our tool bodies (e.g. the result failing its output schema): still JSON.
            request_id = uuid.uuid4().hex[:16]
            log.exception("tool_call", tool=name[:_MAX_PART], request_id=request_id, outcome="internal_error")
            internal: CallToolResult = error_result(internal_payload(request_id))
            return internal
        except ToolError as exc:
            if not isinstance(exc.__cause__, ValidationError):
                raise
            error = argument_error(name, exc.__cause__)
            request_id = uuid.uuid4().hex[:16]
            fields = [f["field"] for f in error.details["findings"]]
            log.info(
                "tool_call",
                tool=name[:_MAX_PART],
                request_id=request_id,
                outcome="error",
                code=error.code,
                fields=ascii(fields),
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
            result: CallToolResult = error_result(error_payload(error, request_id))
            return result

    async def run_stdio_async(self) -> None:
        """Serve on stdio, answering lines the transport cannot parse instead of dropping them.

        The SDK offers no hook for the transport's parse failures (its dispatcher logs and drops
        them), so the stdio loop is rebuilt here from the same public parts ``MCPServer`` uses,
        with :func:`relay` between the transport and the low-level server.
        """
        async with stdio_server() as (read_stream, write_stream):
            sink, parsed = anyio.create_memory_object_stream[SessionMessage | Exception](0)
            async with anyio.create_task_group() as tasks, parsed:
                tasks.start_soon(relay, read_stream, sink, write_stream)
                # _lowlevel_server is the parent's attribute; MCPServer.run_stdio_async uses it the same way.
                lowlevel = self._lowlevel_server
                await lowlevel.run(parsed, write_stream, lowlevel.create_initialization_options())
