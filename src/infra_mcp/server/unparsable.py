"""An answer for every line the SDK's stdio transport cannot parse, instead of silence.

The transport parses each line with pydantic's JSON parser, which refuses nesting deeper than
about 200 levels and lone surrogates (``\\ud800``), and hands the dispatcher the exception, which
drops it: the caller waits forever. :func:`relay` sits between the transport and the server and
answers such a line with a JSON-RPC error carrying our ``VALIDATION_001`` payload, under the
request's id when it can be read without parsing the nested values.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterable
from typing import Any, Protocol

import structlog
from anyio.streams.memory import MemoryObjectSendStream
from mcp.shared.message import SessionMessage
from mcp_types import PARSE_ERROR, ErrorData, JSONRPCError
from pydantic import ValidationError

from infra_mcp.errors import ValidationFailed
from infra_mcp.server.errors import error_payload

log = structlog.get_logger("infra_mcp.calls")

RequestId = str | int
_WHITESPACE = " \t\r\n"
_MAX_ID = 200


class Replies(Protocol):
    """Where answers are written: the transport's write stream."""

    async def send(self, item: SessionMessage, /) -> None: ...


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WHITESPACE:
        i += 1
    return i


def _skip_value(text: str, i: int) -> int:
    """Index just past the JSON value starting at ``i``, by bracket counting (no recursion, no parse)."""
    depth = 0
    in_string = escaped = False
    while i < len(text):
        char = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            if depth == 0:
                return i
            depth -= 1
        elif char == "," and depth == 0:
            return i
        i += 1
    return i


def _writable_id(value: Any) -> RequestId | None:
    """The id to answer under, if it is one JSON-RPC allows and can be written back as UTF-8."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return None
        if len(value) > _MAX_ID:
            return None
    return value


def top_level_fields(line: str) -> tuple[RequestId | None, bool]:
    """Read a JSON-RPC line's top-level ``id`` and whether it names a ``method``.

    Only the top level is read (nested values are skipped by bracket counting), so a value too deep
    or too strange for a JSON parser does not hide the id. Anything unreadable gives what was read
    so far.
    """
    request_id: RequestId | None = None
    has_method = False
    decoder = json.JSONDecoder()
    try:
        i = _skip_ws(line, 0)
        if line[i] != "{":
            return None, False
        i += 1
        while True:
            i = _skip_ws(line, i)
            if line[i] != '"':
                break
            key, i = decoder.raw_decode(line, i)  # a string: shallow
            i = _skip_ws(line, i)
            if line[i] != ":":
                break
            i = _skip_ws(line, i + 1)
            if key == "id":
                # Ids are scalars, so this parse is shallow.
                value, i = decoder.raw_decode(line, i)
                request_id = _writable_id(value)
            else:
                has_method = has_method or key == "method"
                i = _skip_value(line, i)
            i = _skip_ws(line, i)
            if line[i] != ",":
                break
            i += 1
    except (IndexError, ValueError, RecursionError):
        pass
    return request_id, has_method


def answer_for(failure: Exception) -> JSONRPCError | None:
    """The JSON-RPC error answering a line the transport could not parse (``None``: nothing to answer).

    A line that reads as a response (an id but no method) gets no answer: JSON-RPC never answers a
    response, and the request it belongs to times out on the server side instead.
    """
    line = ""
    reason = "unreadable"
    if isinstance(failure, ValidationError) and failure.errors():
        first = failure.errors(include_url=False)[0]
        raw = first.get("input")
        line = raw if isinstance(raw, str) else ""
        reason = str(first.get("msg", reason))[:160]
    request_id, has_method = top_level_fields(line)
    if request_id is not None and not has_method:
        log.warning("unparsable_response_dropped", reason=reason)
        return None
    error = ValidationFailed(
        "The server could not read this message: it is not valid JSON-RPC, is nested deeper than about "
        "200 levels, or holds a lone surrogate (\\ud800-\\udfff). Nothing was done. Send plain JSON with "
        "shallower values and proper Unicode.",
        details={"reason": reason},
    )
    request_ref = uuid.uuid4().hex[:16]
    log.info("unparsable_message", code=error.code, request_id=request_ref, reason=reason)
    return JSONRPCError(
        jsonrpc="2.0",
        id=request_id,
        error=ErrorData(code=PARSE_ERROR, message=json.dumps(error_payload(error, request_ref))),
    )


async def relay(
    source: AsyncIterable[SessionMessage | Exception],
    sink: MemoryObjectSendStream[SessionMessage | Exception],
    replies: Replies,
) -> None:
    """Pass parsed messages on to the server; answer each unparsable one on ``replies`` directly."""
    async with sink:
        async for item in source:
            if not isinstance(item, Exception):
                await sink.send(item)
                continue
            answer = answer_for(item)
            if answer is not None:
                await replies.send(SessionMessage(answer))
