"""Graceful stop: count the tool calls in flight, refuse new ones once stopping, wait for the rest.

An HTTP server that is asked to stop (SIGTERM from a deployment, Ctrl-C) lets every tool call
already running finish, executions included, so an execution ends with its final state written
instead of leaving a journal for the next start to reconcile. Calls arriving after the stop began
are refused with ``SERVER_001`` (nothing was done; call again, another replica or the restarted
server answers).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from infra_mcp.errors import ServerStopping


class Drain:
    """The tool calls in flight on one server, and whether it is stopping."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.stopping_since: float | None = None

    @property
    def stopping(self) -> bool:
        return self.stopping_since is not None

    @property
    def idle(self) -> bool:
        return self.in_flight == 0

    def stop(self) -> None:
        """From now on, refuse new calls (the ones in flight go on)."""
        if self.stopping_since is None:
            self.stopping_since = time.monotonic()

    def waited(self) -> float:
        """Seconds since the stop began (0 while not stopping)."""
        return 0.0 if self.stopping_since is None else time.monotonic() - self.stopping_since

    @asynccontextmanager
    async def call(self, tool: str) -> AsyncIterator[None]:
        """Count one tool call while it runs.

        Raises:
            ServerStopping: SERVER_001 when the server began stopping before the call arrived.
        """
        if self.stopping:
            raise ServerStopping(
                f"This infra-mcp server is stopping, so {tool[:80]} was not run and nothing changed. Call it again "
                "in a few seconds: the restarted server (or another replica behind the same address) answers.",
                details={"tool": tool[:80], "nothing_done": True},
            )
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
