"""How errors reach an agent: a JSON object with code, message, request_id, timestamp, details.

Tools return an ``isError`` result whose text is that JSON (the model reads it); resources raise
``ResourceError`` (a protocol error). Anything that is not an ``InfraError`` is a bug: it is
logged with its traceback on stderr and the agent sees ``INTERNAL_001`` with the request id to
quote, never the traceback.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

import structlog
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolResult, TextContent

from infra_mcp.domain.common import isoformat, utcnow
from infra_mcp.domain.plan import no_such_plan
from infra_mcp.domain.project import ProjectHidden
from infra_mcp.errors import InfraError, NotFound, ValidationFailed

log = structlog.get_logger("infra_mcp.calls")

_P = ParamSpec("_P")
_R = TypeVar("_R")


def error_payload(error: InfraError, request_id: str) -> dict[str, Any]:
    return {
        "code": error.code,
        "message": error.message,
        "request_id": request_id,
        "timestamp": isoformat(utcnow()),
        "details": error.details,
    }


def internal_payload(request_id: str) -> dict[str, Any]:
    return {
        "code": "INTERNAL_001",
        "message": "infra-mcp hit an unexpected error. Nothing was approved or executed by this call. "
        "Report it with the request_id; the server log (stderr) has the details.",
        "request_id": request_id,
        "timestamp": isoformat(utcnow()),
        "details": {},
    }


def _seen_by_caller(exc: InfraError, kwargs: dict[str, Any]) -> InfraError:
    """The error as the caller may see it: a plan in a project they are no member of is "no such plan".

    Otherwise the answer would name the plan's project and tell a non-member the plan exists.
    """
    plan_id = kwargs.get("plan_id")
    if isinstance(exc, ProjectHidden) and isinstance(plan_id, str):
        return no_such_plan(plan_id)
    return exc


def _context_fields(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: kwargs[k] for k in ("project_id", "plan_id") if isinstance(kwargs.get(k), str)}


def error_result(payload: dict[str, Any]) -> Any:  # returned in place of the tool's model
    """An ``isError`` result whose text is exactly the JSON payload (raising ToolError would prefix it)."""
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(payload))], is_error=True)


def handle_tool_errors(name: str) -> Callable[[Callable[_P, Awaitable[_R]]], Callable[_P, Awaitable[_R]]]:
    """Wrap a tool: bound log context, one log line per call, errors as JSON ``ToolError``s."""

    def decorate(fn: Callable[_P, Awaitable[_R]]) -> Callable[_P, Awaitable[_R]]:
        @functools.wraps(fn)
        async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            request_id = uuid.uuid4().hex[:16]
            started = time.perf_counter()
            with structlog.contextvars.bound_contextvars(tool=name, request_id=request_id, **_context_fields(kwargs)):
                try:
                    result = await fn(*args, **kwargs)
                except InfraError as exc:
                    log.info("tool_call", outcome="error", code=exc.code, ms=_ms(started))
                    return cast(_R, error_result(error_payload(_seen_by_caller(exc, kwargs), request_id)))
                except (ToolError, MCPError):
                    log.info("tool_call", outcome="error", ms=_ms(started))
                    raise
                except Exception:
                    log.exception("tool_call", outcome="internal_error", ms=_ms(started))
                    return cast(_R, error_result(internal_payload(request_id)))
                log.info("tool_call", outcome="ok", ms=_ms(started))
                return result

        return wrapper

    return decorate


def handle_resource_errors(uri: str) -> Callable[[Callable[_P, Awaitable[_R]]], Callable[_P, Awaitable[_R]]]:
    """The same for resources: InfraError → ResourceError carrying the JSON payload."""

    def decorate(fn: Callable[_P, Awaitable[_R]]) -> Callable[_P, Awaitable[_R]]:
        @functools.wraps(fn)
        async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            request_id = uuid.uuid4().hex[:16]
            started = time.perf_counter()
            with structlog.contextvars.bound_contextvars(
                resource=uri, request_id=request_id, **_context_fields(kwargs)
            ):
                try:
                    result = await fn(*args, **kwargs)
                except NotFound as exc:
                    log.info("resource_read", outcome="error", code=exc.code, ms=_ms(started))
                    shown = _seen_by_caller(exc, kwargs)
                    raise ResourceNotFoundError(json.dumps(error_payload(shown, request_id))) from None
                except ValidationFailed as exc:
                    # The SDK sends every other ResourceError as -32603 (internal error); bad input is the
                    # caller's to fix, so it goes out as invalid params, with the same JSON payload.
                    log.info("resource_read", outcome="error", code=exc.code, ms=_ms(started))
                    raise MCPError(code=INVALID_PARAMS, message=json.dumps(error_payload(exc, request_id))) from None
                except InfraError as exc:
                    log.info("resource_read", outcome="error", code=exc.code, ms=_ms(started))
                    raise ResourceError(json.dumps(error_payload(exc, request_id))) from None
                except Exception:
                    log.exception("resource_read", outcome="internal_error", ms=_ms(started))
                    raise ResourceError(json.dumps(internal_payload(request_id))) from None
                log.info("resource_read", outcome="ok", ms=_ms(started))
                return result

        return wrapper

    return decorate


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
