"""Reading and checking a project's audit log."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from infra_mcp.domain.audit import AuditCheck, AuditEvent, check_chain
from infra_mcp.domain.common import utcnow
from infra_mcp.domain.integrity import AuditChain
from infra_mcp.domain.project import RESERVED_USER_PREFIXES, Permission
from infra_mcp.errors import NotFound
from infra_mcp.ports import ProjectStore

log = structlog.get_logger(__name__)

# Actors that are infra-mcp itself (rules, reconciliation), never people: always audited. The same
# prefixes are refused as user names, so no person can be one.
INTERNAL_ACTOR_PREFIXES = RESERVED_USER_PREFIXES


class AuditService:
    """The audit log as members may see it, and whether its chain is intact.

    Args:
        projects: Where the audit log lives.
        chain: The keyed chain the store links entries with.
    """

    def __init__(self, projects: ProjectStore, chain: AuditChain) -> None:
        self.projects = projects
        self.chain = chain

    async def check(self, project_id: str, user: str) -> AuditCheck:
        """Walk the project's whole audit chain (members with read access only).

        Raises:
            NotFound: RESOURCE_001, no such project.
            AccessDenied: AUTH_001, not a member.
        """
        project = await self.projects.get_project(project_id)
        project.require(user, Permission.READ)
        events: list[AuditEvent] = await self.projects.audit_trail(project_id)
        return check_chain(project_id, events, self.chain.link)


class RefusalGate:
    """Decides which refusals reach a project's audit log, so refusals cannot flood it.

    A refusal to someone who is not a member of the project goes to the server log only: a
    stranger who knows a plan id must not be able to write into a project's audit (and push real
    events out of view). A member's refusals are audited, at most ``per_window`` per (project,
    actor, action) in ``window`` seconds; the rest go to the server log and are counted, and the
    next audited refusal says how many were left out.

    Args:
        projects: Where audit events are appended.
        clock: Current time.
        per_window: Refusals audited per key and window.
        window: The window, in seconds.
    """

    def __init__(
        self,
        projects: ProjectStore,
        *,
        clock: Callable[[], datetime] = utcnow,
        per_window: int = 10,
        window: float = 60.0,
    ) -> None:
        self.projects = projects
        self.clock = clock
        self.per_window = per_window
        self.window = timedelta(seconds=window)
        self._recent: dict[tuple[str, str, str], deque[datetime]] = {}
        self._suppressed: dict[tuple[str, str, str], int] = {}

    async def append(self, event: AuditEvent) -> None:
        """Append any audit event: a refusal passes through :meth:`record`, anything else is written."""
        if event.outcome == "refused":
            await self.record(event)
        else:
            await self.projects.append_audit(event)

    async def record(self, event: AuditEvent) -> bool:
        """Audit ``event`` (a refusal) if its actor is a member and under the rate; True if audited."""
        try:
            project = await self.projects.get_project(event.project_id)
        except NotFound:
            project = None
        internal = event.actor.startswith(INTERNAL_ACTOR_PREFIXES)
        if not internal and (project is None or project.role_of(event.actor) is None):
            log.warning(
                "refused_non_member",
                project_id=event.project_id,
                actor=event.actor,
                action=event.action,
                target=event.target,
                code=event.details.get("code"),
            )
            return False
        key = (event.project_id, event.actor, event.action)
        now = self.clock()
        recent = self._recent.setdefault(key, deque())
        while recent and now - recent[0] > self.window:
            recent.popleft()
        if len(recent) >= self.per_window:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            log.warning(
                "refusal_not_audited_rate_limited",
                project_id=event.project_id,
                actor=event.actor,
                action=event.action,
                target=event.target,
            )
            return False
        recent.append(now)
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            event = event.model_copy(update={"details": {**event.details, "refusals_not_audited_before": suppressed}})
        await self.projects.append_audit(event)
        return True
