"""What tools return: typed models, so every tool has an outputSchema and structuredContent."""

from __future__ import annotations

from pydantic import BaseModel, Field

from infra_mcp.domain.cloud import UpstreamStatus
from infra_mcp.domain.health import ProjectHealth
from infra_mcp.domain.project import Project, Role
from infra_mcp.domain.state import HistoryEntry, StateResource


class ProjectView(BaseModel):
    project: Project
    your_role: Role | None = Field(description="The acting user's role in this project.")
    health: ProjectHealth = Field(
        description="Its storage health (healthy | degraded | unknown) and reconciliation since the server started."
    )


class ProjectList(BaseModel):
    user: str = Field(description="The acting user; only projects they belong to are listed.")
    projects: list[ProjectView]


class DeletedProject(BaseModel):
    project_id: str
    deleted: bool = True
    deleted_keys: int = Field(default=0, description="State files of this project that were deleted.")
    left_alone: dict[str, str] = Field(
        default_factory=dict, description="Files at its state location it did not write (key: why), left in place."
    )
    note: str = "The project, its plans and the state files it wrote were deleted."


class ResourceList(BaseModel):
    project_id: str
    serial: int = Field(description="State version these resources come from (0 = never written).")
    total_in_state: int
    count: int
    resources: list[StateResource]


class ResourceView(BaseModel):
    project_id: str
    serial: int
    resource: StateResource


class StateHistory(BaseModel):
    project_id: str
    current_serial: int | None = Field(description="Newest version, or None if the state was never written.")
    versions: list[HistoryEntry] = Field(description="Newest first.")


class ForgottenResource(BaseModel):
    name: str
    type: str
    id: str | None = Field(description="Physical id: it may still exist in AWS, now unmanaged.")


class RestoredState(BaseModel):
    project_id: str
    restored_from: int
    serial: int = Field(description="The new current version (a copy of restored_from).")
    resource_count: int
    forgotten_resources: list[ForgottenResource] = Field(
        default_factory=list, description="Resources dropped from the record (forget_resources=true)."
    )
    note: str = "Only the record changed; AWS was not touched. Use plan_rollback to make AWS match an older version."


class ServerStatus(BaseModel):
    user: str = Field(description="The acting user; only projects they belong to are listed.")
    healthy: bool = Field(description="No visible project degraded or pending, and the upstream answers.")
    projects: list[ProjectHealth] = Field(description="Storage health and reconciliation of each visible project.")
    degraded_projects: list[str] = Field(description="Projects whose storage failed its last call (STATE_004).")
    pending_reconciliations: list[str] = Field(
        description="Projects not reconciled yet since start-up (their next call reconciles them first)."
    )
    upstream: UpstreamStatus
