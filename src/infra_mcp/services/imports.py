"""Discover what exists live and bring it under a project (an ``import`` plan, approved like any).

Ownership is checked across every project of this server: a resource another project's state
records is managed (and its project named only to someone who may see that project); it cannot be
imported a second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import BaseModel, Field

from infra_mcp.catalog.registry import Catalog
from infra_mcp.domain.coerce import coerce_properties
from infra_mcp.domain.common import validate_project_id
from infra_mcp.domain.desired import NAME_PATTERN, REGION_PATTERN
from infra_mcp.domain.drift import writable_model
from infra_mcp.domain.plan import Action, Change, Plan, PlanStatus, PlanSummary, PropertyChange, ResourceSpec
from infra_mcp.domain.project import Permission, Project
from infra_mcp.domain.refs import escape
from infra_mcp.domain.render import summary_line
from infra_mcp.domain.state import StateFile
from infra_mcp.domain.type_catalog import ResourceTypeInfo
from infra_mcp.domain.typefacts import type_facts
from infra_mcp.errors import AlreadyExists, InfraError, NotFound, StateUnavailable, ValidationFailed
from infra_mcp.ports import ProjectStore, StateStores, Upstream
from infra_mcp.services.planning import PlanningService, new_plan_id

log = structlog.get_logger(__name__)

TYPES_MAX = 20
IMPORTS_MAX = 100
DISCOVERED_MAX = 1000  # per call, over all types: the rest is counted, not listed


class ImportRequest(BaseModel):
    # No docstring or descriptions: every word here is in an agent's context on every turn.
    name: str = Field(max_length=128)  # the logical name to give it, new in the project
    type: str = Field(max_length=200)
    identifier: str = Field(description="e.g. a bucket name, vpc-...", max_length=2048)
    region: str | None = None  # default: the project's


@dataclass(frozen=True)
class Owner:
    project_id: str
    name: str  # the logical name there


@dataclass(frozen=True)
class Found:
    type: str
    identifier: str
    owner: Owner | None
    visible: bool  # whether the caller may see the owning project


@dataclass(frozen=True)
class Discovery:
    region: str
    found: list[Found]
    truncated: bool


class ImportService:
    """Lists live resources and plans their import.

    Args:
        projects: Projects (to find who manages what) and plans.
        states: The state store of each project.
        upstream: Cloud Control (``ListResources``, ``GetResource``).
        catalog: Which types Cloud Control can list and read; their read-only and write-only paths.
        planning: Stores the plans made here, signed and audited like every plan.
    """

    def __init__(
        self,
        projects: ProjectStore,
        states: StateStores,
        upstream: Upstream,
        catalog: Catalog,
        planning: PlanningService,
    ) -> None:
        self.projects = projects
        self.states = states
        self.upstream = upstream
        self.catalog = catalog
        self.planning = planning

    async def _project(self, project_id: str, user: str) -> Project:
        validate_project_id(project_id)
        project = await self.projects.get_project(project_id)
        # Discovery surveys the account beyond the project's own records, and import plans: both
        # are for those who may plan in the project.
        project.require(user, Permission.PLAN)
        return project

    async def _owners(self, *, complete: bool = False) -> dict[tuple[str, str, str], Owner]:
        """(type, region, identifier) -> the project whose state records it, over every project.

        Raises:
            StateUnavailable: STATE_004 with ``complete`` when a project's state cannot be read (an
                import must not give a second project what an unreadable one may manage).
        """
        owners: dict[tuple[str, str, str], Owner] = {}
        for project in await self.projects.list_projects():
            try:
                state = await self.states.for_project(project).read(project.id)
            except InfraError as exc:
                log.warning("owners_state_unreadable", project_id=project.id, code=exc.code)
                if complete:
                    raise StateUnavailable(
                        "The state of a project on this server cannot be read now, so infra-mcp cannot tell whether "
                        "it already manages these resources; nothing was planned. Try again later (get_server_status "
                        "shows your projects' health).",
                        details={"reason": "ownership_unknown"},
                    ) from None
                continue
            for resource in state.resources if state is not None else []:
                if resource.id:
                    owners[(resource.type, resource.region, resource.id)] = Owner(project.id, resource.name)
        return owners

    def _type(self, type_name: str, region: str, handler: str) -> ResourceTypeInfo:
        info = self.catalog.get(type_name, region)
        handlers = info.schema.get("handlers")
        if not isinstance(handlers, dict) or handler not in handlers:
            verb = "list" if handler == "list" else "read"
            raise ValidationFailed(
                f"Cloud Control cannot {verb} {info.type_name} (its registry schema has no {handler} handler), so "
                f"infra-mcp cannot {'discover' if handler == 'list' else 'import'} it. Manage it another way, or "
                "choose a type Cloud Control supports.",
                details={"type": info.type_name, "missing_handler": handler},
            )
        return info

    async def discover(self, project_id: str, user: str, types: Sequence[str], region: str | None) -> Discovery:
        """Live resources of ``types`` in ``region`` (the project's by default), each managed or not.

        Raises:
            ValidationFailed: VALIDATION_001 for an unknown type, or one Cloud Control cannot list.
            AccessDenied: AUTH_001 without the plan permission.
        """
        project = await self._project(project_id, user)
        where = _region(region or project.settings.default_region)
        if not types or len(types) > TYPES_MAX:
            raise ValidationFailed(
                f"Pass 1 to {TYPES_MAX} resource types, e.g. ['AWS::S3::Bucket', 'AWS::EC2::VPC'].",
                details={"field": "types", "count": len(types)},
            )
        infos = [self._type(t, where, "list") for t in dict.fromkeys(types)]
        owners = await self._owners()
        visible = {p.id for p in await self.projects.list_projects(user)}
        found: list[Found] = []
        truncated = False
        for info in infos:
            token: str | None = None
            while True:
                page, token = await self.upstream.list_resources(info.type_name, region=where, next_token=token)
                for item in page:
                    owner = owners.get((info.type_name, where, item.identifier))
                    found.append(
                        Found(info.type_name, item.identifier, owner, owner is not None and owner.project_id in visible)
                    )
                if token is None or len(found) >= DISCOVERED_MAX:
                    truncated = truncated or token is not None
                    break
            if len(found) >= DISCOVERED_MAX:
                truncated = truncated or info is not infos[-1]
                break
        log.info("resources_discovered", project_id=project.id, region=where, count=len(found), truncated=truncated)
        return Discovery(region=where, found=found[:DISCOVERED_MAX], truncated=truncated)

    async def plan_import(
        self, project_id: str, user: str, resources: Sequence[ImportRequest], description: str = ""
    ) -> Plan:
        """A plan (action ``import``) whose execution records each live resource in the project's state.

        Each resource's writable properties, as AWS reports them now, become what is declared; nothing
        is created or changed in AWS.

        Raises:
            ValidationFailed: VALIDATION_001, a bad name, an unknown type, or one Cloud Control cannot read.
            AlreadyExists: CONFLICT_001, a name taken in this project, or a resource a project already manages.
            NotFound: RESOURCE_001, no such resource live.
            AccessDenied: AUTH_001 without the plan permission.
        """
        project = await self._project(project_id, user)
        region = project.settings.default_region
        if not resources or len(resources) > IMPORTS_MAX:
            raise ValidationFailed(
                f"Pass 1 to {IMPORTS_MAX} resources to import, each with name, type and identifier.",
                details={"field": "resources", "count": len(resources)},
            )
        state = await self.states.for_project(project).read(project.id) or StateFile.empty(project.id)
        taken = {r.name for r in state.resources}
        seen_names: set[str] = set()
        requests: list[tuple[ImportRequest, ResourceTypeInfo]] = []
        for index, request in enumerate(resources):
            if not NAME_PATTERN.fullmatch(request.name):
                raise ValidationFailed(
                    f"resources[{index}].name {request.name[:80]!r} is not a valid name: use 1-128 letters, digits, "
                    "'-' or '_'.",
                    details={"field": f"resources[{index}].name"},
                )
            if request.name in taken or request.name in seen_names:
                raise AlreadyExists(
                    f"A resource named {request.name!r} already exists in {project.id!r} (or twice in this request). "
                    "Choose another name.",
                    details={"project_id": project.id, "resource": request.name},
                )
            seen_names.add(request.name)
            where = _region(request.region or region)
            requests.append((request.model_copy(update={"region": where}), self._type(request.type, where, "read")))
        owners = await self._owners(complete=True)
        visible = {p.id for p in await self.projects.list_projects(user)}
        changes: list[Change] = []
        seen_ids: set[tuple[str, str]] = set()
        for request, info in requests:
            region = request.region or region
            try:
                live = await self.upstream.get_resource(info.type_name, request.identifier, region=region)
            except NotFound:
                raise NotFound(
                    f"No {info.type_name} {request.identifier[:200]!r} in {region}. Check the identifier; "
                    "discover_resources lists what exists.",
                    details={"type": info.type_name, "identifier": request.identifier[:200], "region": region},
                ) from None
            identifier = live.identifier or request.identifier
            key = (info.type_name, identifier)
            owner = owners.get((info.type_name, region, identifier))
            if owner is not None or key in seen_ids:
                raise _managed(info.type_name, identifier, owner, project.id, visible)
            seen_ids.add(key)
            changes.append(self._change(request, info, identifier, live.properties, region))
        plan = Plan(
            id=new_plan_id(),
            project_id=project.id,
            description=description or f"Import {', '.join(r.name for r, _ in requests[:5])}",
            author=user,
            kind="partial",
            status=PlanStatus.PENDING,
            base_serial=state.serial,
            base_lineage=state.lineage if state.serial else None,
            changes=changes,
            execution_order=[[c.name for c in changes]],
            summary=_summary(len(changes)),
            risk_reasons=[c.risk_reasons[0] for c in changes][:20],
        ).with_fingerprint()
        return await self.planning.record(project, plan, user=user)

    def _change(
        self, request: ImportRequest, info: ResourceTypeInfo, identifier: str, live: dict[str, Any], region: str
    ) -> Change:
        facts = type_facts(self.catalog, info.type_name, region)
        properties, tags = writable_model(live, facts)
        properties = coerce_properties(properties, info)
        spec = ResourceSpec(name=request.name, type=info.type_name, region=region, properties=properties, tags=tags)
        shown = [PropertyChange(path="/" + escape(k), after=v) for k, v in properties.items()]
        shown += [PropertyChange(path="/Tags/" + escape(k), after=v) for k, v in tags.items()]
        return Change(
            name=request.name,
            type=info.type_name,
            action=Action.IMPORT,
            region=region,
            physical_id=identifier,
            property_changes=shown,
            desired=spec,
            risk_reasons=[
                f"importing {request.name} ({info.type_name}) {identifier}: adopted as it is, nothing changes in AWS"
            ],
        )


def _summary(count: int) -> PlanSummary:
    summary = PlanSummary(import_=count)
    return summary.model_copy(update={"text": summary_line(summary)})


def _region(region: str) -> str:
    if not isinstance(region, str) or not REGION_PATTERN.fullmatch(region):
        raise ValidationFailed(
            f"Region {str(region)[:40]!r} is not a region name. Use one like 'us-east-1'.", details={"field": "region"}
        )
    return region


def _managed(type_name: str, identifier: str, owner: Owner | None, here: str, visible: set[str]) -> AlreadyExists:
    """CONFLICT_001 for a resource already under management, naming its project only to those who may see it."""
    if owner is None:
        return AlreadyExists(
            f"{type_name} {identifier[:200]!r} is listed twice in this request. Import it once.",
            details={"type": type_name, "identifier": identifier[:200]},
        )
    if owner.project_id == here:
        return AlreadyExists(
            f"{type_name} {identifier[:200]!r} is already in this project, as {owner.name!r}. Use it by that name: there is nothing to import.",
            details={"type": type_name, "identifier": identifier[:200], "project_id": here, "resource": owner.name},
        )
    if owner.project_id in visible:
        return AlreadyExists(
            f"{type_name} {identifier[:200]!r} is managed by project {owner.project_id!r} (as {owner.name!r}); a "
            "resource is managed by one project only. Leave it there, or remove it from that project first.",
            details={"type": type_name, "identifier": identifier[:200], "managed_by": owner.project_id},
        )
    return AlreadyExists(
        f"{type_name} {identifier[:200]!r} is managed by another project; a resource is managed by one project only. "
        "Ask that project's owner, or choose another resource.",
        details={"type": type_name, "identifier": identifier[:200], "managed_by": None},
    )


__all__ = ["Discovery", "Found", "ImportRequest", "ImportService"]
