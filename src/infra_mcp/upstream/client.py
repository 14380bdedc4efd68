"""The :class:`~infra_mcp.ports.Upstream` port, implemented as an MCP client of an upstream AWS MCP server."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal

import structlog

from infra_mcp.domain.cloud import CallerIdentity, ProgressEvent, ResourceDescription, UpstreamStatus
from infra_mcp.errors import (
    InfraError,
    UpstreamAWSError,
    UpstreamRefusesChanges,
    UpstreamThrottled,
    UpstreamUnavailable,
)
from infra_mcp.upstream import operations as ops
from infra_mcp.upstream.aws_errors import is_transient
from infra_mcp.upstream.connection import EndpointUnreachable, ToolTransport, TransportFailure, UpstreamProtocolError
from infra_mcp.upstream.dialects import AwsAnswer, Dialect
from infra_mcp.upstream.resilience import CircuitBreaker, RetryPolicy, retrying
from infra_mcp.upstream.stderr_tail import last_line

log = structlog.get_logger(__name__)
_MUTATIONS = frozenset({"CreateResource", "UpdateResource", "DeleteResource"})


class McpUpstream:
    """Cloud Control through an upstream MCP server, with time-outs, retries and a circuit breaker.

    Use as ``async with make_upstream(settings) as upstream:`` or call :meth:`aclose` when done.

    Args:
        transport: The connection to the upstream (real: ``McpConnection``).
        dialect: How AWS calls are phrased as tool calls (``CallAwsDialect`` / ``RunScriptDialect``).
        kind: ``sandbox`` or ``aws``, for status and logs.
        target: What the upstream is, secrets already redacted.
        region: Default region (status and health checks).
        timeout: Per-attempt time-out in seconds.
        deadline: Total seconds one call may take, retries included (default: 2.5 time-outs), so a hung
            upstream holds a change for a bounded, known time instead of time-out x attempts.
        retry: Retry policy for throttling and transient failures.
        breaker: Circuit breaker over connection failures.
        read_only: The upstream runs with ``READ_OPERATIONS_ONLY`` (it refuses every mutation).
        mutation_consent: The upstream runs with ``REQUIRE_MUTATION_CONSENT`` (it asks its own client
            to confirm each mutation; infra-mcp does not forward that prompt, so each would fail).
    """

    def __init__(
        self,
        transport: ToolTransport,
        dialect: Dialect,
        *,
        kind: Literal["sandbox", "aws"],
        target: str,
        region: str,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        read_only: bool = False,
        mutation_consent: bool = False,
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self._dialect = dialect
        self._kind: Literal["sandbox", "aws"] = kind
        self._target = target
        self._region = region
        self._timeout = timeout
        self._deadline = deadline if deadline is not None else timeout * 2.5
        self._clock = clock
        self._retry = retry or RetryPolicy()
        self._breaker = breaker or CircuitBreaker()
        self._last_error: str | None = None
        self._read_only = read_only
        self._mutation_consent = mutation_consent

    async def __aenter__(self) -> McpUpstream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()

    @property
    def connected(self) -> bool:
        """Whether a live connection is held right now (no I/O; ``status()`` also checks health)."""
        return self._transport.connected

    # ---- the port ---------------------------------------------------------------------------

    async def create_resource(
        self, type_name: str, desired_state: dict[str, Any], *, region: str, client_token: str | None = None
    ) -> ProgressEvent:
        call = ops.create_resource(type_name, desired_state, region=region, client_token=client_token)
        return ops.progress_event((await self._call(call)).data, operation=call.operation)

    async def get_resource(self, type_name: str, identifier: str, *, region: str) -> ResourceDescription:
        call = ops.get_resource(type_name, identifier, region=region)
        data = (await self._call(call)).data
        return ops.resource_description(data.get("ResourceDescription"), type_name=type_name, operation=call.operation)

    async def update_resource(
        self,
        type_name: str,
        identifier: str,
        patch: list[dict[str, Any]],
        *,
        region: str,
        client_token: str | None = None,
    ) -> ProgressEvent:
        call = ops.update_resource(type_name, identifier, patch, region=region, client_token=client_token)
        return ops.progress_event((await self._call(call)).data, operation=call.operation)

    async def delete_resource(
        self, type_name: str, identifier: str, *, region: str, client_token: str | None = None
    ) -> ProgressEvent:
        call = ops.delete_resource(type_name, identifier, region=region, client_token=client_token)
        return ops.progress_event((await self._call(call)).data, operation=call.operation)

    async def list_resources(
        self, type_name: str, *, region: str, next_token: str | None = None
    ) -> tuple[list[ResourceDescription], str | None]:
        call = ops.list_resources(type_name, region=region, next_token=next_token)
        answer = await self._call(call)
        return ops.resource_page(answer.data, type_name=type_name, pagination_token=answer.pagination_token)

    async def get_request_status(self, request_token: str, *, region: str) -> ProgressEvent:
        call = ops.get_request_status(request_token, region=region)
        return ops.progress_event((await self._call(call)).data, operation=call.operation)

    async def caller_identity(self, *, region: str) -> CallerIdentity:
        return ops.caller_identity((await self._call(ops.get_caller_identity(region=region))).data)

    def change_refusal(self) -> UpstreamRefusesChanges | None:
        """The error every change would end in as the upstream is configured, or None (see the port)."""
        if self._read_only:
            return UpstreamRefusesChanges(
                "The upstream AWS MCP server runs read-only (READ_OPERATIONS_ONLY=true), so it would refuse every "
                "change; nothing was sent. Start it without READ_OPERATIONS_ONLY (see the README's upstream "
                "section), then execute the plan again: it stays approved.",
                details={"reason": "read_only", "setting": "READ_OPERATIONS_ONLY"},
            )
        if self._mutation_consent:
            return UpstreamRefusesChanges(
                "The upstream AWS MCP server asks its own consent for every change (REQUIRE_MUTATION_CONSENT=true), "
                "which infra-mcp does not forward: the plan's approval is that consent. Nothing was sent. Start "
                "the upstream without REQUIRE_MUTATION_CONSENT, then execute the plan again: it stays approved.",
                details={"reason": "mutation_consent", "setting": "REQUIRE_MUTATION_CONSENT"},
            )
        return None

    async def status(self) -> UpstreamStatus:
        """Report which upstream this is and whether it answers now (one ``sts get-caller-identity``)."""
        caller: CallerIdentity | None = None
        try:
            caller = await self.caller_identity(region=self._region)
        except InfraError as exc:
            self._last_error = f"{exc.code}: {exc.message}"
        note = (
            "Sandbox: a simulated Cloud Control; nothing touches a real AWS account."
            if self._kind == "sandbox"
            else "Real AWS through the upstream MCP server."
        )
        if self._read_only or self._mutation_consent:
            note += " It is configured to refuse changes: execute_plan will refuse up front."
        if self._dialect.experimental:
            note += " The run_script dialect is EXPERIMENTAL: not yet verified against the managed AWS MCP Server."
        return UpstreamStatus(
            kind=self._kind,
            dialect=self._dialect.name,
            experimental=self._dialect.experimental,
            target=self._target,
            tool=self._dialect.tool,
            connected=self._transport.connected,
            healthy=caller is not None,
            circuit=self._breaker.state,
            region=self._region,
            caller=caller,
            last_error=self._last_error,
            consecutive_failures=self._breaker.consecutive_failures,
            read_only=self._read_only,
            mutation_consent=self._mutation_consent,
            note=note,
        )

    # ---- machinery --------------------------------------------------------------------------

    async def _call(self, call: ops.AwsCall) -> AwsAnswer:
        """Make ``call`` with retries; translate transport failures into AWS_MCP_001."""
        arguments = self._dialect.encode(call)  # bad input fails here, before any I/O
        started = self._clock()
        attempts = 0

        async def once() -> AwsAnswer:
            nonlocal attempts
            attempts += 1
            remaining = self._deadline - (self._clock() - started)
            return await self._attempt(call, arguments, timeout=max(0.001, min(self._timeout, remaining)))

        def should_retry(exc: Exception) -> bool:
            if self._clock() - started >= self._deadline:
                return False  # the call's total budget is spent: report, do not keep the caller waiting
            if isinstance(exc, UpstreamThrottled):
                return True  # a throttled request was not executed
            if isinstance(exc, TransportFailure) and not exc.may_have_executed:
                return True  # nothing was sent (to the upstream, or by it to AWS)
            if isinstance(exc, TransportFailure) or is_transient(exc):
                return call.idempotent  # AWS may have acted: only repeat what cannot do harm
            return False

        try:
            answer = await retrying(once, policy=self._retry, should_retry=should_retry)
        except TransportFailure as exc:
            self._last_error = f"AWS_MCP_001: {exc}"
            log.warning("upstream_call_failed", operation=call.operation, attempts=attempts, error=str(exc))
            stderr = getattr(exc, "upstream_stderr", None)
            said = f" Its stderr ends: {last_line(stderr)!r}." if stderr else ""
            raise UpstreamUnavailable(
                f"The upstream AWS MCP server did not complete {call.operation}: {exc}{said} " + _next_step(exc, call),
                details={
                    "operation": call.operation,
                    "reason": exc.reason or type(exc).__name__,
                    "may_have_executed": exc.may_have_executed and not call.idempotent,
                    # Whether AWS may have acted on some attempt, retry-safe or not: the outcome is then
                    # unknown until reconciled (by ClientToken / request token).
                    "outcome_unknown": exc.may_have_executed and call.operation in _MUTATIONS,
                    "attempts": attempts,
                    "deadline_seconds": self._deadline,
                    **({"upstream_stderr": stderr} if stderr else {}),
                },
            ) from None
        except InfraError as exc:
            if isinstance(exc, UpstreamAWSError | UpstreamUnavailable):
                self._last_error = f"{exc.code}: {exc.message}"
            exc.details.setdefault("attempts", attempts)
            log.info("upstream_call_refused", operation=call.operation, code=exc.code, attempts=attempts)
            raise
        log.debug(
            "upstream_call",
            operation=call.operation,
            attempts=attempts,
            ms=round((self._clock() - started) * 1000),
        )
        return answer

    async def _attempt(self, call: ops.AwsCall, arguments: dict[str, Any], *, timeout: float) -> AwsAnswer:  # noqa: ASYNC109 - the per-attempt share of the call's deadline
        self._breaker.before_call()
        try:
            result = await self._transport.call_tool(self._dialect.tool, arguments, timeout=timeout)
        except TransportFailure:
            self._breaker.record_failure()
            raise
        except UpstreamProtocolError as exc:
            self._breaker.record_success()  # it answered: the connection is fine, the request is not
            raise UpstreamAWSError(
                f"The upstream rejected the MCP call to {self._dialect.tool!r}: {exc.message}. "
                "Check the configured upstream tool and dialect.",
                details={"reason": "mcp_error", "mcp_error_code": exc.code, "operation": call.operation},
            ) from None
        except BaseException:
            self._breaker.release_probe()
            raise
        self._breaker.record_success()
        return self._dialect.decode(call, result)


def _next_step(exc: TransportFailure, call: ops.AwsCall) -> str:
    if exc.may_have_executed and not call.idempotent:
        return "AWS may have acted: check with get/list before retrying."
    if isinstance(exc, EndpointUnreachable):
        return (
            "Nothing reached AWS. Check the upstream's network, proxy (HTTPS_PROXY), CA bundle and "
            "AWS_ENDPOINT_URL_* settings, then retry."
        )
    return "Check get_server_status; the next call reconnects."
