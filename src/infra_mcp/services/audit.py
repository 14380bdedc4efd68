"""Reading and checking a project's audit log."""

from __future__ import annotations

from infra_mcp.domain.audit import AuditCheck, AuditEvent, check_chain
from infra_mcp.domain.integrity import AuditChain
from infra_mcp.domain.project import Permission
from infra_mcp.ports import ProjectStore


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
