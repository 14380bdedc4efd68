"""The MCP server: thin tools, resources and prompts over the services.

Each tool validates its arguments by annotation, calls one service, and returns one model.
The services are opened once per server, in the lifespan, from one frozen Settings.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Annotated, Any

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts.base import Prompt, PromptArgument
from pydantic import BaseModel, Field

from infra_mcp import __version__
from infra_mcp.container import open_app
from infra_mcp.domain.health import StorageHealth
from infra_mcp.domain.project import require_assignable_user
from infra_mcp.domain.redaction import redacted_resource, redacted_state
from infra_mcp.domain.state import ResourceStatus, StateFile
from infra_mcp.domain.validation import warm_up
from infra_mcp.errors import InfraError, ValidationFailed
from infra_mcp.logs import configure_logging
from infra_mcp.server import models as m
from infra_mcp.server.annotations import DELETES_RECORDS, READ_ONLY, WRITES
from infra_mcp.server.boundary import InfraMCPServer
from infra_mcp.server.drift_tools import register_drift_tools
from infra_mcp.server.errors import handle_resource_errors, handle_tool_errors
from infra_mcp.server.params import NewProjectId, ProjectId
from infra_mcp.server.plan_tools import register_plan_tools
from infra_mcp.server.prompts import PromptSpec, load_prompts, prompt_files
from infra_mcp.server.request_state import shared_request_state
from infra_mcp.server.runtime import Runtime
from infra_mcp.server.template_tools import register_template_tools
from infra_mcp.settings import Settings
from infra_mcp.stores.postgres import PostgresProjectStore

INSTRUCTIONS = """\
infra-mcp manages AWS infrastructure per project. Nothing changes in AWS until a plan a person approved
is executed. The loop:
1. list_projects, or create_project. Read what exists: list_resources, get_resource.
2. Plan: plan_changes (the whole desired state), plan_template (a CloudFormation template as it is) or
   plan_resource (create, update or delete one resource).
   A plan answer has a summary, risk, cost delta, one line per change and a diff_uri: show the user.
3. approve_plan: the person confirms in a prompt only they answer (never answer it or run an approval
   command yourself). If they decline, ask what to change and plan again, or reject_plan.
4. execute_plan applies it, with progress; its answer says what happened to each change.
5. get_state_history lists versions; plan_changes with to_version plans a way back, approved like any plan.
6. Changes made outside infra-mcp: detect_drift, then plan_changes with refresh (revert) or accept_drift.
   Resources that exist but no project manages: discover_resources, then import_resources.
Errors are JSON with a code and a message saying what to do next; STATE_004 means that project's
storage is down (get_server_status shows health).
"""

_ASCII_NUMBER = re.compile(r"[0-9]{1,12}")


def _json(value: BaseModel | dict[str, Any] | list[Any]) -> str:
    if isinstance(value, BaseModel):
        return value.model_dump_json(indent=2, by_alias=True)
    return json.dumps(value, indent=2, default=str)


def build_server(
    settings: Settings | None = None,
    *,
    prompts: list[PromptSpec] | None = None,
    auth: AuthSettings | None = None,
    token_verifier: TokenVerifier | None = None,
) -> MCPServer[Any]:
    """Build the MCP server. Prompt files are parsed here, so a malformed one stops start-up.

    Raises:
        PromptFileError: naming the malformed prompt file.
        ValidationFailed: VALIDATION_001 if the acting user has a reserved name (``rule:...``).
    """
    settings = settings or Settings()
    # The acting user must not pass for one of our own audit actors (e.g. rule:auto-approval).
    require_assignable_user(settings.user, field="INFRA_MCP_USER")
    specs = prompts if prompts is not None else load_prompts(prompt_files())
    runtime = Runtime(settings, verified_identities=auth is not None)

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[Runtime]:
        async with open_app(settings) as app, AsyncExitStack() as replicas:
            if isinstance(app.store, PostgresProjectStore):
                # Other replicas on the same database hear of pending-plan changes made here, and we of theirs.
                await replicas.enter_async_context(app.store.listening(runtime.pending_changed_elsewhere))
                runtime.pending.relay = app.store.announce
            runtime._app = app
            try:
                yield runtime
            finally:
                runtime._app = None
                runtime.pending.relay = None

    mcp = InfraMCPServer(
        name="infra-mcp",
        title="infra-mcp",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level=settings.log_level,
        auth=auth,
        token_verifier=token_verifier,
        # Any replica opens what another sealed (an elicitation answered through another replica).
        request_state_security=shared_request_state(settings.key_path),
        subscriptions=runtime.pending.bus,
    )
    mcp.middleware.append(runtime.pending.middleware)
    # cfn-lint takes about a second to load. Loading it beside the handshake slowed the initialize answer
    # by a quarter on two cores; started by the first tools/list, it is ready (or nearly) for the first plan.
    mcp.after_handshake = lambda: threading.Thread(target=warm_up, name="cfn-lint-warm-up", daemon=True).start()
    _register_project_tools(mcp, runtime)
    _register_state_tools(mcp, runtime)
    _register_resources(mcp, runtime)
    register_plan_tools(mcp, runtime)
    register_template_tools(mcp, runtime)
    register_drift_tools(mcp, runtime)
    _register_upstream_tools(mcp, runtime)
    _register_prompts(mcp, specs)
    return mcp


# Tools: projects --------------------------------------------------------------------------------


def _register_project_tools(mcp: MCPServer[Any], rt: Runtime) -> None:
    def view(project: Any) -> m.ProjectView:
        return m.project_view(project, rt.user, rt.app.health.of(project.id))

    @mcp.tool(name="create_project", annotations=WRITES)
    @handle_tool_errors("create_project")
    async def create_project(
        project_id: NewProjectId,
        name: str | None = None,
        description: str = "",
        default_region: str | None = None,
    ) -> m.ProjectView:
        """Create a project (AWS resources managed together); you become its owner. Next: plan_changes."""
        settings = {"default_region": default_region} if default_region else None
        project = await rt.app.projects.create_project(
            project_id, name=name, description=description, user=rt.user, settings=settings
        )
        return view(project)

    @mcp.tool(name="get_project", annotations=READ_ONLY)
    @handle_tool_errors("get_project")
    async def get_project(project_id: ProjectId) -> m.ProjectView:
        """Read a project's members, settings, approval policy and storage health."""
        return view(await rt.app.projects.get_project(project_id, rt.user))

    @mcp.tool(name="list_projects", annotations=READ_ONLY)
    @handle_tool_errors("list_projects")
    async def list_projects() -> m.ProjectList:
        """List the projects you are a member of, with their storage health: start here."""
        projects = await rt.app.projects.list_projects(rt.user)
        return m.ProjectList(
            user=rt.user,
            projects=[
                m.ProjectSummary(
                    project_id=p.id,
                    name=p.name,
                    your_role=m.role_name(p, rt.user),
                    health=rt.app.health.of(p.id).storage.value,
                )
                for p in projects
            ],
        )

    @mcp.tool(name="update_project", annotations=WRITES)
    @handle_tool_errors("update_project")
    async def update_project(
        project_id: ProjectId,
        name: str | None = None,
        description: str | None = None,
        settings: Annotated[
            dict[str, Any] | None,
            Field(
                description="Settings to change (merged): state_location, default_region, approval "
                "{require_human_confirmation, allow_self_approval, approval_ttl_minutes, auto_approval "
                "{max_risk, max_cost_delta_usd, actions}}."
            ),
        ] = None,
        members: Annotated[
            list[dict[str, str]] | None,
            Field(
                description='Replaces the member list: [{"user": "alice", "role": "owner|approver|editor|viewer"}]; '
                "an owner must remain."
            ),
        ] = None,
    ) -> m.ProjectView:
        """Change a project's name, description, settings or members (owners only)."""
        project = await rt.app.projects.update_project(
            project_id, user=rt.user, name=name, description=description, settings=settings, members=members
        )
        if members is not None or settings is not None:
            await rt.pending.changed(project)  # who may approve what, or who sees it, may have changed
        return view(project)

    @mcp.tool(name="delete_project", annotations=DELETES_RECORDS)
    @handle_tool_errors("delete_project")
    async def delete_project(project_id: ProjectId) -> m.DeletedProject:
        """Delete a project, its plans and state files; refused while it has resources."""
        _, deletion = await rt.app.projects.delete_project(project_id, user=rt.user)
        rt.app.health.forget(project_id)
        return m.DeletedProject(
            project_id=project_id,
            deleted=True,
            deleted_keys=len(deletion.deleted),
            left_alone=deletion.left,
        )


# Tools: state ---------------------------------------------------------------------------------------


def _register_state_tools(mcp: MCPServer[Any], rt: Runtime) -> None:
    @mcp.tool(name="list_resources", annotations=READ_ONLY)
    @handle_tool_errors("list_resources")
    async def list_resources(
        project_id: ProjectId,
        type: Annotated[str | None, Field(description="e.g. AWS::EC2::VPC")] = None,
        tag: Annotated[str | None, Field(description="'Key' or 'Key=Value'.")] = None,
        status: ResourceStatus | None = None,
    ) -> m.ResourceList:
        """List a project's resources as recorded (no AWS call). Next: get_resource for one."""
        state, found = await rt.app.state.list_resources(project_id, rt.user, type_name=type, tag=tag, status=status)
        drift = m.current_drift(await rt.app.drift.last(project_id, rt.user), state.serial)
        return m.ResourceList(
            project_id=project_id,
            serial=state.serial,
            total_in_state=len(state.resources),
            count=len(found),
            drift_checked_at=drift.checked_at.isoformat() if drift else "",
            resources=[m.resource_item(r, drift) for r in found],
        )

    @mcp.tool(name="get_resource", annotations=READ_ONLY)
    @handle_tool_errors("get_resource")
    async def get_resource(
        project_id: ProjectId,
        resource: Annotated[str, Field(description="Name, physical id or ARN.")],
    ) -> m.ResourceView:
        """Read one resource's properties and tags as recorded, and its last drift."""
        state, found = await rt.app.state.get_resource(project_id, rt.user, resource)
        drift = m.current_drift(await rt.app.drift.last(project_id, rt.user), state.serial)
        return m.resource_view(project_id, state.serial, redacted_resource(found), drift)

    @mcp.tool(name="get_state_history", annotations=READ_ONLY)
    @handle_tool_errors("get_state_history")
    async def get_state_history(project_id: ProjectId) -> m.StateHistory:
        """List a project's state versions, newest first (who, when, which plan)."""
        versions = await rt.app.state.history(project_id, rt.user)
        return m.StateHistory(
            project_id=project_id,
            current_serial=max((v.serial for v in versions if v.valid), default=0),
            versions=[m.version_view(v, checkpoints) for v, checkpoints in m.grouped_history(versions)],
        )

    @mcp.tool(name="restore_state", annotations=WRITES)
    @handle_tool_errors("restore_state")
    async def restore_state(
        project_id: ProjectId,
        version: Annotated[int, Field(ge=1, description="History version (serial) to restore.")],
        forget_resources: Annotated[
            bool,
            Field(description="Owners only: drop current resources from the record (left in AWS)."),
        ] = False,
    ) -> m.RestoredState:
        """Make an older state version the current record again, e.g. after STATE_001 (AWS is not touched)."""
        written, forgotten = await rt.app.state.restore(project_id, rt.user, version, forget_resources=forget_resources)
        return m.RestoredState(
            project_id=project_id,
            restored_from=version,
            serial=written.serial,
            resource_count=len(written.resources),
            forgotten_resources=[m.ForgottenResource(name=r.name, type=r.type, id=r.id or "") for r in forgotten],
        )


# Tools: upstream -------------------------------------------------------------------------------------


def _register_upstream_tools(mcp: MCPServer[Any], rt: Runtime) -> None:
    @mcp.tool(name="get_server_status", annotations=READ_ONLY)
    @handle_tool_errors("get_server_status")
    async def get_server_status() -> m.ServerStatus:
        """Health: your projects' storage, pending reconciliations, and the upstream to AWS (sandbox or real)."""
        projects = await rt.app.projects.list_projects(rt.user)
        health = [rt.app.health.of(p.id) for p in projects]
        upstream = await rt.app.upstream.status()
        degraded = [h.project_id for h in health if h.storage is StorageHealth.DEGRADED]
        pending = [h.project_id for h in health if not h.settled]
        return m.ServerStatus(
            user=rt.user,
            healthy=not degraded and not pending and upstream.healthy,
            projects=[m.health_view(h) for h in health],
            pending_reconciliations=pending,
            upstream=m.upstream_view(upstream),
        )


# Resources ----------------------------------------------------------------------------------------


def _register_resources(mcp: MCPServer[Any], rt: Runtime) -> None:
    @mcp.resource("infra://projects", name="projects", mime_type="application/json")
    @handle_resource_errors("infra://projects")
    async def projects_resource() -> str:
        """Projects the acting user is a member of."""
        projects = await rt.app.projects.list_projects(rt.user)
        return _json([p.model_dump(mode="json") for p in projects])

    @mcp.resource("infra://projects/{project_id}", name="project", mime_type="application/json")
    @handle_resource_errors("infra://projects/{project_id}")
    async def project_resource(project_id: str) -> str:
        """One project (members, settings, approval policy)."""
        return _json(await rt.app.projects.get_project(project_id, rt.user))

    @mcp.resource("infra://projects/{project_id}/state", name="state", mime_type="application/json")
    @handle_resource_errors("infra://projects/{project_id}/state")
    async def state_resource(project_id: str) -> str:
        """The project's current state file, as stored. It keeps the state file format's camelCase field names
        (projectId, dependsOn, createdAt, lastModifiedBy...); tools answer in snake_case."""
        _, state = await rt.app.state.current(project_id, rt.user)
        return _json(redacted_state(state).to_document())

    @mcp.resource("infra://projects/{project_id}/state/history", name="state-history", mime_type="application/json")
    @handle_resource_errors("infra://projects/{project_id}/state/history")
    async def history_resource(project_id: str) -> str:
        """Every state version, newest first: one entry per executed plan, its checkpoints grouped under it."""
        versions = await rt.app.state.history(project_id, rt.user)
        return _json(
            [
                v.model_dump(mode="json") | {"checkpoints": [c.model_dump(mode="json") for c in checkpoints]}
                for v, checkpoints in m.grouped_history(versions)
            ]
        )

    @mcp.resource(
        "infra://projects/{project_id}/state/history/{version}", name="state-version", mime_type="application/json"
    )
    @handle_resource_errors("infra://projects/{project_id}/state/history/{version}")
    async def version_resource(project_id: str, version: str) -> str:
        """One state version, as it was written."""
        state: StateFile = await rt.app.state.version(project_id, rt.user, _version_number(version))
        return _json(redacted_state(state).to_document())


def _version_number(raw: str) -> int:
    # Not str.isdigit(): it (and int()) accept '١' or '２', which are not version numbers here.
    if not _ASCII_NUMBER.fullmatch(raw) or int(raw) < 1:
        raise ValidationFailed(
            f"State version must be a positive integer, got {raw!r}. See infra://projects/<id>/state/history.",
            details={"version": raw},
        )
    return int(raw)


# Prompts ------------------------------------------------------------------------------------------


def _register_prompts(mcp: MCPServer[Any], specs: list[PromptSpec]) -> None:
    def renderer(spec: PromptSpec) -> Any:
        def render(**values: Any) -> str:
            return spec.render(values)

        return render

    for spec in specs:
        mcp.add_prompt(
            Prompt(
                name=spec.name,
                title=spec.title,
                description=spec.description,
                arguments=[
                    PromptArgument(name=a.name, description=a.description, required=a.required) for a in spec.arguments
                ],
                fn=renderer(spec),
            )
        )


def serve_stdio(settings: Settings | None = None) -> None:
    """Run the server on stdio (how agent hosts launch it). Logs go to stderr.

    Raises:
        SystemExit: 1 when start-up fails with an InfraError (a damaged database, say), after writing its
            code and message to stderr: the person reading the host's log needs the message, not a traceback.
    """
    settings = settings or Settings()
    configure_logging(settings.log_level)
    try:
        build_server(settings).run("stdio")
    except BaseException as exc:
        error = infra_error_in(exc)
        if error is None:
            raise
        sys.stderr.write(f"infra-mcp: cannot start: {error.code}: {error.message}\n")
        raise SystemExit(1) from None


def infra_error_in(exc: BaseException) -> InfraError | None:
    """The InfraError that ``exc`` is, or that the task groups wrapped it in (the lifespan runs in one)."""
    if isinstance(exc, InfraError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = infra_error_in(inner)
            if found is not None:
                return found
    return None
