"""Tools for drift (detect_drift, accept_drift) and adoption (discover_resources, import_resources).

Their answers stay lean: the full drift result is the resource ``infra://projects/{id}/drift``,
and the two plan-making tools answer the same small plan view as every other plan tool.
"""

import json
from datetime import datetime
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

from infra_mcp.domain.drift import DriftReport, DriftStatus, ResourceDrift
from infra_mcp.domain.redaction import redacted
from infra_mcp.server.annotations import READS_AWS, WRITES_READING_AWS
from infra_mcp.server.errors import handle_resource_errors, handle_tool_errors
from infra_mcp.server.params import Description, ProjectId
from infra_mcp.server.plan_models import PlanResult, plan_result
from infra_mcp.server.runtime import Runtime
from infra_mcp.services.imports import ImportRequest

LINES_MAX = 50
# Bounded at the boundary: a type name is looked up (and near misses suggested) by string distance.
Name = Annotated[str, Field(max_length=128)]
TypeName = Annotated[str, Field(max_length=200)]
_VALUE_MAX = 60


class DriftView(BaseModel):
    checked_at: datetime
    in_sync: int
    modified: int
    deleted: int
    unknown: int
    lines: list[str]  # one per resource not in sync (or with properties that cannot be compared)
    drift_uri: str


class Discovered(BaseModel):
    type: str
    identifier: str
    managed_by: str  # a project id, 'another project' (not yours) or '' (unmanaged)


class DiscoveryView(BaseModel):
    region: str
    unmanaged: int
    managed: int
    truncated: bool
    resources: list[Discovered]


def _shown(value: Any) -> str:
    text = "null" if value is None else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _VALUE_MAX else text[: _VALUE_MAX - 1] + "…"


def drift_line(drift: ResourceDrift) -> str | None:
    """One line for a resource worth a look, None for one plainly in sync."""
    what = f"{drift.name} ({drift.type})"
    if drift.status is DriftStatus.DELETED:
        return f"deleted {what} {drift.id}: gone from AWS"
    if drift.status is DriftStatus.UNKNOWN:
        return f"unknown {what}: {drift.error}"[:300]
    skipped = f" (not compared: {', '.join(drift.not_compared[:5])})" if drift.not_compared else ""
    if drift.status is DriftStatus.MODIFIED:
        shown = "; ".join(f"{d.path} {_shown(d.expected)} -> {_shown(d.actual)}" for d in drift.differences[:5])
        more = f"; {len(drift.differences) - 5} more" if len(drift.differences) > 5 else ""
        return f"modified {what}: {shown}{more}{skipped}"[:600]
    return f"in_sync {what}{skipped}" if skipped else None


def drift_view(report: DriftReport) -> DriftView:
    lines = [line for line in (drift_line(r) for r in report.resources) if line is not None]
    if len(lines) > LINES_MAX:
        lines = [*lines[:LINES_MAX], f"... {len(lines) - LINES_MAX} more in drift_uri"]
    return DriftView(
        checked_at=report.checked_at,
        in_sync=report.count(DriftStatus.IN_SYNC),
        modified=report.count(DriftStatus.MODIFIED),
        deleted=report.count(DriftStatus.DELETED),
        unknown=report.count(DriftStatus.UNKNOWN),
        lines=lines,
        drift_uri=f"infra://projects/{report.project_id}/drift",
    )


def register_drift_tools(mcp: MCPServer[Any], rt: Runtime) -> None:
    @mcp.tool(name="detect_drift", annotations=READS_AWS)
    @handle_tool_errors("detect_drift")
    async def detect_drift(
        project_id: ProjectId,
        ctx: Context,
        names: Annotated[list[Name] | None, Field(description="Default: all.")] = None,
    ) -> DriftView:
        """Compare resources with what is live in AWS. Next: plan_changes with refresh to revert, or accept_drift."""

        async def progress(progress: float, total: float | None, message: str) -> None:
            await ctx.report_progress(progress, total, message)

        return drift_view(await rt.app.drift.detect(project_id, rt.user, names, progress))

    @mcp.tool(name="accept_drift", annotations=WRITES_READING_AWS)
    @handle_tool_errors("accept_drift")
    async def accept_drift(
        project_id: ProjectId,
        names: list[Name],
        description: Description = "",
    ) -> PlanResult:
        """Plan recording live values as declared, sending nothing to AWS. Next: approve_plan."""
        plan = await rt.app.drift.accept(project_id, rt.user, names, description)
        return plan_result(redacted(plan))  # auto-approval happened in the planning use case

    @mcp.tool(name="discover_resources", annotations=READS_AWS)
    @handle_tool_errors("discover_resources")
    async def discover_resources(
        project_id: ProjectId,
        types: Annotated[list[TypeName], Field(description="e.g. ['AWS::S3::Bucket']")],
        region: Annotated[str | None, Field(description="Default: the project's.")] = None,
    ) -> DiscoveryView:
        """List live resources of some types, managed by a project or not. Next: import_resources."""
        found = await rt.app.imports.discover(project_id, rt.user, types, region)
        items = [
            Discovered(
                type=f.type,
                identifier=f.identifier,
                managed_by="" if f.owner is None else f.owner.project_id if f.visible else "another project",
            )
            for f in found.found
        ]
        managed = sum(1 for f in found.found if f.owner is not None)
        return DiscoveryView(
            region=found.region,
            unmanaged=len(items) - managed,
            managed=managed,
            truncated=found.truncated,
            resources=items,
        )

    @mcp.tool(name="import_resources", annotations=WRITES_READING_AWS)
    @handle_tool_errors("import_resources")
    async def import_resources(
        project_id: ProjectId,
        resources: list[ImportRequest],
        description: Description = "",
    ) -> PlanResult:
        """Plan adopting live resources as they are (nothing changes in AWS). Next: approve_plan."""
        plan = await rt.app.imports.plan_import(project_id, rt.user, resources, description)
        return plan_result(redacted(plan))  # auto-approval happened in the planning use case

    @mcp.resource("infra://projects/{project_id}/drift", name="drift", mime_type="application/json")
    @handle_resource_errors("infra://projects/{project_id}/drift")
    async def drift_resource(project_id: str) -> str:
        """The project's last drift result in full: each resource's status and every differing property."""
        report = await rt.app.drift.last(project_id, rt.user)
        if report is None:
            return json.dumps({"project_id": project_id, "checked_at": None, "resources": []})
        return report.model_dump_json(indent=2)


__all__ = ["drift_line", "register_drift_tools"]
