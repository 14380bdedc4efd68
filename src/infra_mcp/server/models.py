"""What tools return: typed models, so every tool has an outputSchema and structuredContent."""

from __future__ import annotations

from pydantic import BaseModel, Field

from infra_mcp.domain.project import Project, Role
from infra_mcp.domain.state import HistoryEntry, StateResource


class ProjectView(BaseModel):
    project: Project
    your_role: Role | None = Field(description="The acting user's role in this project.")


class ProjectList(BaseModel):
    user: str = Field(description="The acting user; only projects they belong to are listed.")
    projects: list[ProjectView]


class DeletedProject(BaseModel):
    project_id: str
    deleted: bool = True
    note: str = "The project, its plans and its state history were deleted."


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


class RestoredState(BaseModel):
    project_id: str
    restored_from: int
    serial: int = Field(description="The new current version (a copy of restored_from).")
    resource_count: int
    note: str = "Only the record changed; AWS was not touched. Use plan_rollback to make AWS match an older version."
