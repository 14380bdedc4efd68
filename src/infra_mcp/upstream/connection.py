"""One long-lived MCP client connection to the upstream, re-established when it breaks.

Why a dedicated task per connection: an ``mcp.Client`` (its anyio task group and cancel scopes)
must be exited by the task that entered it. Tool calls come from many tasks (tool handlers,
the executor's parallel workers), and the connection must outlive each of them. So each
connection *generation* is entered, held and exited by its own background task; callers only
use the connected session, which is safe from any task. When a call finds the connection
closed, it marks the generation dropped; the holder task exits the client, and the next call
starts a fresh generation (transparent reconnect).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

import anyio
import structlog
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, CallToolResult

from infra_mcp.upstream.stderr_tail import StderrTail

log = structlog.get_logger(__name__)

ClientFactory = Callable[[], Client]


class TransportFailure(Exception):
    """The upstream could not be used; subclasses say whether the call may have run."""

    may_have_executed = True
    # What AWS_MCP_001's details call it (default: the class name).
    reason: str | None = None


class ConnectFailed(TransportFailure):
    """Could not connect (spawn, handshake or time-out): the call was never sent.

    Attributes:
        upstream_stderr: The tail of a stdio upstream's stderr, where it says why it did not start.
    """

    may_have_executed = False

    def __init__(self, message: str, *, reason: str | None = None, upstream_stderr: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        self.upstream_stderr = upstream_stderr or None


class ConnectionLost(TransportFailure):
    """The connection closed while the call was in flight: AWS may or may not have acted."""


class CallTimedOut(TransportFailure):
    """No answer within the per-call time-out: AWS may or may not have acted."""


class EndpointUnreachable(TransportFailure):
    """The upstream ran the command but could not reach the AWS endpoint (refused, DNS, proxy, TLS).

    botocore raises these before the request is sent, so repeating it cannot do harm.
    """

    may_have_executed = False
    reason = "endpoint_unreachable"


class EndpointLost(TransportFailure):
    """The AWS endpoint took the request but no answer came back (read time-out, connection closed)."""

    reason = "endpoint_lost"


class UpstreamProtocolError(Exception):
    """The upstream answered the MCP request with a JSON-RPC error (e.g. unknown tool)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ToolTransport(Protocol):
    """Calls one tool on the upstream; the seam the resilience tests replace with a fake."""

    @property
    def connected(self) -> bool: ...

    async def call_tool(self, name: str, arguments: dict[str, Any], *, timeout: float) -> CallToolResult:  # noqa: ASYNC109 - a timed-out call is classified (may have run), not just cancelled
        """Raises TransportFailure subclasses or UpstreamProtocolError."""
        ...

    async def aclose(self) -> None: ...


class _Generation:
    """One connection attempt and, if it succeeded, its lifetime."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.drop = asyncio.Event()
        self.client: Client | None = None
        self.error: BaseException | None = None
        self.finished = False
        self.task: asyncio.Task[None] | None = None

    @property
    def usable(self) -> bool:
        return self.client is not None and not self.drop.is_set() and not self.finished


class McpConnection:
    """A :class:`ToolTransport` over an ``mcp.Client``, connected lazily and held until :meth:`aclose`.

    Args:
        factory: Builds a fresh, un-entered ``mcp.Client`` for each (re)connection.
        connect_timeout: Seconds allowed for spawning/handshaking before ``ConnectFailed``.
        stderr: The stdio upstream's stderr tail the factory writes to, quoted when a start fails.
    """

    def __init__(
        self, factory: ClientFactory, *, connect_timeout: float = 30.0, stderr: StderrTail | None = None
    ) -> None:
        self._factory = factory
        self._connect_timeout = connect_timeout
        self._stderr = stderr
        self._gen: _Generation | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def connected(self) -> bool:
        gen = self._gen
        return gen is not None and gen.usable and gen.client is not None and not _known_closed(gen.client)

    async def call_tool(self, name: str, arguments: dict[str, Any], *, timeout: float) -> CallToolResult:  # noqa: ASYNC109 - a timed-out call is classified (may have run), not just cancelled
        gen, client = await self._live_client()
        try:
            with anyio.fail_after(timeout):
                return await client.call_tool(name, arguments)
        except TimeoutError:
            # A hung upstream would hang the retry too: the next call starts a fresh one (stdio: a new
            # process). Mutations carry a ClientToken, so the retry is answered with the original request.
            self._drop(gen)
            raise CallTimedOut(f"No answer from the upstream within {timeout:g}s.") from None
        except MCPError as exc:
            if exc.error.code == CONNECTION_CLOSED:
                self._drop(gen)
                raise ConnectionLost("The upstream connection closed during the call.") from None
            raise UpstreamProtocolError(exc.error.code, exc.error.message) from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, OSError) as exc:
            self._drop(gen)
            raise ConnectionLost(f"The upstream connection broke ({type(exc).__name__}).") from None

    async def aclose(self) -> None:
        """Close the connection (stops a stdio upstream's process). Idempotent."""
        self._closed = True
        gen = self._gen
        if gen is None or gen.task is None:
            return
        gen.drop.set()
        # asyncio.wait, not await: a generation cancelled by a hung start must not re-raise its
        # CancelledError into the caller that is closing.
        await asyncio.wait({gen.task}, timeout=15)
        if not gen.task.done():
            gen.task.cancel()

    async def _stderr_tail(self) -> str | None:
        return await self._stderr.settled() if self._stderr is not None else None

    def _drop(self, gen: _Generation) -> None:
        if not gen.drop.is_set():
            log.info("upstream_connection_dropped")
            gen.drop.set()

    async def _live_client(self) -> tuple[_Generation, Client]:
        # A connection already known to be closed (the upstream process died since the last call) is
        # replaced *before* sending, so the call is never sent into a dead pipe and need not be
        # reported as "may have executed".
        for _ in range(2):
            gen = await self._live()
            client = gen.client
            if client is not None and not _known_closed(client):
                return gen, client
            self._drop(gen)
        raise ConnectFailed("The upstream connection closed again right after connecting.")

    async def _live(self) -> _Generation:
        seen = self._gen
        if seen is not None and seen.usable:
            return seen
        async with self._lock:
            gen = self._gen
            if gen is not None and gen.usable:
                return gen
            if gen is not None and gen is not seen and gen.error is not None:
                # Another caller just tried and failed while we queued: share its verdict instead of
                # hammering a dead upstream once per waiting caller.
                raise ConnectFailed(_describe(gen.error)) from None
            if self._closed:
                raise ConnectFailed("The upstream client is closed.")
            gen = _Generation()
            self._gen = gen
            gen.task = asyncio.create_task(self._hold(gen), name="infra-mcp-upstream-connection")
            try:
                with anyio.fail_after(self._connect_timeout):
                    await gen.ready.wait()
            except TimeoutError:
                gen.error = TimeoutError(f"no handshake within {self._connect_timeout:g}s")
                gen.drop.set()
                gen.task.cancel()
                raise ConnectFailed(
                    f"The upstream's start hangs: it was launched but did not complete the MCP handshake within "
                    f"{self._connect_timeout:g}s (the real AWS API MCP server hangs like this at start-up without "
                    "internet access).",
                    reason="start_hung",
                    upstream_stderr=await self._stderr_tail(),
                ) from None
            if gen.error is not None or gen.client is None:
                raise ConnectFailed(_describe(gen.error), upstream_stderr=await self._stderr_tail()) from None
            return gen

    async def _hold(self, gen: _Generation) -> None:
        try:
            client = self._factory()
            async with client:
                if self._stderr is not None:
                    self._stderr.spawned()
                gen.client = client
                gen.ready.set()
                log.info("upstream_connected")
                await gen.drop.wait()
        except Exception as exc:
            # Connecting failed, or the client's shutdown complained about an already dead
            # process; either way the next call starts a fresh generation.
            if gen.client is None:
                gen.error = exc
                log.warning("upstream_connect_failed", error=_describe(exc))
            else:
                log.debug("upstream_connection_closed_with_error", error=_describe(exc))
        finally:
            gen.client = None
            gen.finished = True
            gen.ready.set()


def _known_closed(client: Client) -> bool:
    """Whether the client's connection has already ended (EOF from the upstream).

    The SDK has no public signal for this, so we peek at the session's dispatcher. If those private
    names change, this answers False and a dead connection is detected by the call failing instead
    (ConnectionLost), which is still correct, only less graceful for non-idempotent calls.
    """
    try:
        dispatcher = getattr(client.session, "_dispatcher", None)
    except RuntimeError:  # not entered, or already exited
        return True
    return bool(getattr(dispatcher, "_closed", False))


def _describe(exc: BaseException | None) -> str:
    """A short, secret-free description: the exception types and first messages, never the env."""
    if exc is None:
        return "the connection closed during the handshake"
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions[:3])
    if isinstance(exc, MCPError):
        return f"MCP error {exc.error.code}: {exc.error.message}"
    text = str(exc)[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
