"""Who to tell when the plans waiting for a person change: ``notifications/resources/list_changed``.

``infra://plans/pending`` lists, for the caller, the pending plans of their projects and whether
they may approve each. When a plan is made, approved, rejected or executed, or a project's members
change, every open session of a member of that project gets a list-changed notification (clients on
the 2025 protocol revisions, on their session's stream), and the SDK's subscription bus gets a
``ResourcesListChanged`` event (clients on 2026-07-28, through ``subscriptions/listen``). The
client then reads the resource again, under its own identity.

On several replicas sharing PostgreSQL, :attr:`PendingWatch.relay` announces each change to the other
replicas (``LISTEN``/``NOTIFY``, see ``stores/postgres.py``), which tell their own sessions; without it
(SQLite, one process) only this process's sessions are told.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import structlog
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourcesListChanged
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from infra_mcp.domain.project import Project
from infra_mcp.errors import InfraError

log = structlog.get_logger("infra_mcp.pending")

PENDING_URI = "infra://plans/pending"
NOTIFY_SECONDS = 1.0


class PendingWatch:
    """The open sessions and their users; notifies the members of a project when its pending plans change.

    Args:
        user_of_call: The acting user of the message being handled (the verified token's user on a
            team server), or None when it cannot be told.
    """

    def __init__(self, user_of_call: Callable[[], str | None]) -> None:
        self.user_of_call = user_of_call
        self.bus = InMemorySubscriptionBus()
        self._sessions: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        # Set when other replicas share the project database: tells them a project's pending plans changed.
        self.relay: Callable[[str], Awaitable[None]] | None = None

    async def middleware(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """The SDK's server middleware: remember each session's user from the messages it sends."""
        user = self.user_of_call()
        # ctx.session is a per-request proxy; the client's connection (its standalone stream) is what
        # lives as long as the session. The SDK 2.3 has no public accessor for it, hence the private
        # name, read defensively: without it this session is simply not told.
        connection = getattr(ctx.session, "_connection", None)
        if user is not None and connection is not None and ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            self._sessions[connection] = user
        return await call_next(ctx)

    @property
    def watched(self) -> int:
        return len(self._sessions)

    async def changed(self, project: Project, *, relay: bool = True) -> None:
        """Tell the open sessions of the project's members that the pending plans changed, and, with
        ``relay``, the other replicas (``relay=False`` for a change another replica announced)."""
        members = {m.user for m in project.members}
        targets = [session for session, user in list(self._sessions.items()) if user in members]
        # Concurrently and each within NOTIFY_SECONDS: a member whose stream stalls (a client that stopped
        # reading) must not hold up the call that changed the plan, nor the other members.
        async with anyio.create_task_group() as tasks:
            for session in targets:
                tasks.start_soon(self._tell, session)
        await self.bus.publish(ResourcesListChanged())
        log.debug("pending_plans_changed", project_id=project.id, sessions=len(targets))
        if relay and self.relay is not None:
            try:
                await self.relay(project.id)
            except InfraError as exc:  # the change is made; only other replicas' clients hear of it later
                log.warning("pending_relay_unavailable", project_id=project.id, code=exc.code)

    async def _tell(self, session: Any) -> None:
        with anyio.move_on_after(NOTIFY_SECONDS):
            try:
                await session.send_resource_list_changed()
            except Exception:  # a closed session must not fail the call that changed the plan
                self._sessions.pop(session, None)
