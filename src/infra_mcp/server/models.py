"""What the project and state tools return: small views made for the caller, in snake_case.

Domain models do not travel whole: a tool answers what the next call needs and points at a resource
(``infra://projects/...``) for the rest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from infra_mcp.domain.cloud import UpstreamStatus
from infra_mcp.domain.drift import DriftReport, DriftStatus, ResourceDrift
from infra_mcp.domain.health import ProjectHealth
from infra_mcp.domain.project import Project, Role
from infra_mcp.domain.state import HistoryEntry, StateResource


class HealthView(BaseModel):
    project_id: str
    storage: str
    reconciliation: str
    error_code: str = ""
    error: str = ""


def health_view(health: ProjectHealth) -> HealthView:
    return HealthView(
        project_id=health.project_id,
        storage=health.storage.value,
        reconciliation=health.reconciliation.value,
        error_code=health.error.code if health.error else "",
        error=health.error.message if health.error else "",
    )


class ProjectView(BaseModel):
    project_id: str
    name: str
    description: str
    your_role: str
    members: dict[str, str] = Field(description="User: role.")
    settings: dict[str, Any] = Field(description="As update_project takes them.")
    health: str = Field(description="Storage: healthy, degraded or unknown.")
    health_error: str = ""


class ProjectSummary(BaseModel):
    project_id: str
    name: str
    your_role: str
    health: str  # storage: healthy | degraded | unknown


class ProjectList(BaseModel):
    user: str  # the acting user: only projects they belong to are listed
    projects: list[ProjectSummary]


def project_view(project: Project, user: str, health: ProjectHealth) -> ProjectView:
    return ProjectView(
        project_id=project.id,
        name=project.name,
        description=project.description,
        your_role=role_name(project, user),
        members={m.user: m.role.value for m in project.members},
        settings=project.settings.model_dump(mode="json"),
        health=health.storage.value,
        health_error=f"{health.error.code}: {health.error.message}" if health.error else "",
    )


def role_name(project: Project, user: str) -> str:
    """The user's role; only members see a project, so "" (none) shows only to a project's creator mid-way."""
    role: Role | None = project.role_of(user)
    return role.value if role else ""


class DeletedProject(BaseModel):
    project_id: str
    deleted: bool
    deleted_keys: int = Field(description="State files deleted.")
    left_alone: dict[str, str] = Field(description="Files it did not write (key: why), left in place.")


class ResourceItem(BaseModel):
    name: str
    type: str
    id: str = Field(description="Physical id.")
    region: str
    status: str
    drift: str = ""  # in_sync | modified | deleted | unknown, by the last detect_drift ('' if none since)


class ResourceList(BaseModel):
    project_id: str
    serial: int = Field(description="State version (0: never written).")
    total_in_state: int
    count: int
    drift_checked_at: str = ""  # when the last detect_drift ran, if nothing changed the state since
    resources: list[ResourceItem]


def current_drift(report: DriftReport | None, serial: int) -> DriftReport | None:
    """The last drift result if it speaks of the current state (a plan executed since makes it stale)."""
    return report if report is not None and report.serial == serial else None


def resource_item(resource: StateResource, drift: DriftReport | None = None) -> ResourceItem:
    found = drift.of(resource.name) if drift is not None else None
    return ResourceItem(
        name=resource.name,
        type=resource.type,
        id=resource.id or "",
        region=resource.region,
        status=resource.status,
        drift=found.status.value if found is not None else "",
    )


class ResourceView(BaseModel):
    project_id: str
    serial: int
    name: str
    type: str
    id: str = Field(description="Physical id.")
    region: str
    status: str
    properties: dict[str, Any]
    tags: dict[str, str]
    depends_on: list[str]
    drift: str = ""  # the last detect_drift's finding and when ('' if none since the last change)


def resource_view(
    project_id: str, serial: int, resource: StateResource, drift: DriftReport | None = None
) -> ResourceView:
    found = drift.of(resource.name) if drift is not None else None
    return ResourceView(
        project_id=project_id,
        serial=serial,
        name=resource.name,
        type=resource.type,
        id=resource.id or "",
        region=resource.region,
        status=resource.status.value,
        properties=resource.properties,
        tags=resource.tags,
        depends_on=resource.depends_on,
        drift=_drift_text(found, drift.checked_at) if found is not None and drift is not None else "",
    )


def _drift_text(found: ResourceDrift, at: datetime) -> str:
    when = at.isoformat(timespec="seconds")
    if found.status is DriftStatus.MODIFIED:
        shown = "; ".join(f"{d.path}: {d.expected!r} -> {d.actual!r}" for d in found.differences[:10])
        return f"modified (checked {when}): {shown}"[:1000]
    return f"{found.status.value} (checked {when})" + (f": {found.error}" if found.error else "")


class VersionView(BaseModel):
    serial: int
    timestamp: datetime
    last_modified_by: str
    change_description: str
    change_plan_id: str
    resource_count: int
    valid: bool
    checkpoint: bool = Field(description="Mid-execution, its plan unfinished.")
    checkpoints: list[int] = Field(description="Its plan's checkpoint serials.")


def grouped_history(entries: list[HistoryEntry]) -> list[tuple[HistoryEntry, list[HistoryEntry]]]:
    """History as a person reads it: one entry per executed plan, its checkpoints grouped under it.

    A checkpoint is listed on its own only when its plan has no final version (the execution was
    cut short): then it is the last word on what exists. Order is kept (newest first).
    """
    finals = {e.change_plan_id for e in entries if not e.checkpoint and e.change_plan_id}
    under: dict[str, list[HistoryEntry]] = {}
    for entry in entries:
        if entry.checkpoint and entry.change_plan_id in finals:
            under.setdefault(entry.change_plan_id, []).append(entry)
    return [
        (entry, under.get(entry.change_plan_id or "", []) if not entry.checkpoint else [])
        for entry in entries
        if not (entry.checkpoint and entry.change_plan_id in finals)
    ]


def version_view(entry: HistoryEntry, checkpoints: list[HistoryEntry]) -> VersionView:
    return VersionView(
        serial=entry.serial,
        timestamp=entry.timestamp,
        last_modified_by=entry.last_modified_by,
        change_description=entry.change_description,
        change_plan_id=entry.change_plan_id or "",
        resource_count=entry.resource_count,
        valid=entry.valid,
        checkpoint=entry.checkpoint,
        checkpoints=[c.serial for c in checkpoints],
    )


class StateHistory(BaseModel):
    project_id: str
    current_serial: int = Field(description="0: never written.")
    versions: list[VersionView] = Field(description="Newest first.")


class ForgottenResource(BaseModel):
    name: str
    type: str
    id: str


class RestoredState(BaseModel):
    project_id: str
    restored_from: int
    serial: int = Field(description="The new current version.")
    resource_count: int
    forgotten_resources: list[ForgottenResource] = Field(default_factory=list, description="May still exist in AWS.")


class ServerStatus(BaseModel):
    user: str
    healthy: bool
    projects: list[HealthView]
    pending_reconciliations: list[str]
    upstream: UpstreamView


class UpstreamView(BaseModel):
    kind: str  # sandbox or aws
    dialect: str
    target: str
    healthy: bool
    region: str
    caller_arn: str
    last_error: str
    note: str
    read_only: bool = Field(default=False, description="READ_OPERATIONS_ONLY: changes refused.")
    mutation_consent: bool = Field(default=False, description="REQUIRE_MUTATION_CONSENT: changes refused.")


def upstream_view(status: UpstreamStatus) -> UpstreamView:
    return UpstreamView(
        kind=status.kind + (" (experimental)" if status.experimental else ""),
        dialect=status.dialect,
        target=status.target,
        healthy=status.healthy,
        region=status.region,
        caller_arn=status.caller.arn if status.caller else "",
        last_error=status.last_error or "",
        note=status.note,
        read_only=status.read_only,
        mutation_consent=status.mutation_consent,
    )
