"""Wait for an asynchronous Cloud Control request to finish."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import anyio

from infra_mcp.domain.cloud import ProgressEvent
from infra_mcp.errors import UpstreamUnavailable
from infra_mcp.ports import Upstream


async def wait_for_request(
    upstream: Upstream,
    event: ProgressEvent,
    *,
    region: str,
    poll_initial: float = 0.05,
    poll_max: float = 2.0,
    timeout: float = 1800.0,  # noqa: ASYNC109 - on expiry we raise a resumable error naming the token
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    clock: Callable[[], float] = anyio.current_time,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ProgressEvent:
    """Poll ``get_request_status`` until the request is done; return the final event.

    Delays double from ``poll_initial`` up to ``poll_max``; a ``RetryAfter`` from AWS is honoured
    (never polled sooner, within the remaining time). A ``FAILED`` event is returned, not raised:
    the caller decides what AWS's ``error_code`` means for its plan.

    Args:
        upstream: The upstream port.
        event: The event returned by create/update/delete.
        region: The region the request was made in.
        poll_initial: First delay, seconds.
        poll_max: Longest delay between polls, seconds.
        timeout: Total patience, seconds.
        sleep, clock, now: Injectable for tests.

    Raises:
        UpstreamUnavailable: AWS_MCP_001 if still not done after ``timeout`` (the request carries on
            in AWS; ``details["request_token"]`` lets a later call resume waiting).
        InfraError: Whatever ``get_request_status`` raises after its own retries.
    """
    deadline = clock() + timeout
    delay = poll_initial
    while not event.operation_status.done:
        wait = delay
        if event.retry_after is not None:
            retry_after = event.retry_after if event.retry_after.tzinfo else event.retry_after.replace(tzinfo=UTC)
            wait = max(wait, (retry_after - now()).total_seconds())
        remaining = deadline - clock()
        if remaining <= 0:
            raise UpstreamUnavailable(
                f"Cloud Control request {event.request_token} is still {event.operation_status.value} after "
                f"{timeout:g}s. It continues in AWS: wait on the request token again later.",
                details={
                    "request_token": event.request_token,
                    "operation_status": event.operation_status.value,
                    "type_name": event.type_name,
                    "identifier": event.identifier,
                },
            )
        await sleep(max(0.0, min(wait, remaining)))
        event = await upstream.get_request_status(event.request_token, region=region)
        delay = min(poll_max, delay * 2)
    return event
