"""The one place that wires adapters into services, from one frozen Settings.

Both the MCP server's lifespan and the CLI (``infra-mcp plans ...``) open the same App, so a
person approving out of band works on exactly the database the server uses.

Every service reaches project state through :class:`~infra_mcp.services.health.TrackedStates`, so
one project's failing storage degrades that project only (issue 16).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import anyio
import structlog

from infra_mcp.catalog import Catalog, default_catalog
from infra_mcp.domain.integrity import AuditChain, Notary, derive
from infra_mcp.domain.sealed import use_digest_key
from infra_mcp.ports import Upstream
from infra_mcp.services.approvals import ApprovalService
from infra_mcp.services.audit import AuditService, RefusalGate
from infra_mcp.services.execution import ExecutionService
from infra_mcp.services.health import HealthService, TrackedStates
from infra_mcp.services.keys import ServerKey
from infra_mcp.services.planning import PlanningService
from infra_mcp.services.projects import ProjectService
from infra_mcp.services.secrets import SecretSealer
from infra_mcp.services.state import StateService
from infra_mcp.services.templates import TemplatePlanning
from infra_mcp.settings import Settings
from infra_mcp.stores.sqlite import SqliteProjectStore
from infra_mcp.stores.state_factory import StateStoreRegistry
from infra_mcp.upstream.factory import make_upstream

log = structlog.get_logger(__name__)


@dataclass
class App:
    settings: Settings
    store: SqliteProjectStore
    states: TrackedStates
    locations: StateStoreRegistry
    health: HealthService
    catalog: Catalog
    projects: ProjectService
    state: StateService
    planning: PlanningService
    approvals: ApprovalService
    audit: AuditService
    execution: ExecutionService
    upstream: Upstream
    templates: TemplatePlanning


@asynccontextmanager
async def open_app(
    settings: Settings, *, upstream: Upstream | None = None, reconcile: bool = True
) -> AsyncIterator[App]:
    """Open the database, state stores and the upstream; close them after.

    Opening does not wait on any project's storage nor on the upstream (it connects lazily, on its
    first call). With ``reconcile``, every project is checked in the background, each with a
    deadline, and executions interrupted by a crash are reconciled; a call on a project not reached
    yet reconciles it first (see :class:`~infra_mcp.services.health.HealthService`).
    """
    async with AsyncExitStack() as stack:
        key = ServerKey(settings.key_path).get()
        chain = AuditChain(key)
        use_digest_key(derive(key, "digest"))
        store = SqliteProjectStore(settings.database_path, chain=chain)
        await store.open()
        stack.push_async_callback(store.close)
        locations = StateStoreRegistry(settings)
        health = HealthService(deadline_seconds=settings.reconcile_deadline_seconds)
        states = TrackedStates(locations, health)
        catalog = default_catalog()
        projects = ProjectService(store, states)
        sealer = SecretSealer(settings.key_path)
        notary = Notary(key)
        refusals = RefusalGate(store)
        if upstream is None:
            upstream = make_upstream(settings)
            stack.push_async_callback(upstream.aclose)
        approvals = ApprovalService(store, states, notary=notary, refusals=refusals)
        planning = PlanningService(
            store,
            states,
            catalog,
            sealer,
            notary=notary,
            settle=health.settle_pending,
            approve_by_rule=approvals.apply_rules,
        )
        app = App(
            settings=settings,
            store=store,
            states=states,
            locations=locations,
            health=health,
            catalog=catalog,
            projects=projects,
            state=StateService(projects),
            planning=planning,
            approvals=approvals,
            audit=AuditService(store, chain),
            execution=ExecutionService(
                store,
                states,
                upstream,
                catalog,
                sealer,
                notary=notary,
                parallelism=settings.execution_parallelism,
                refusals=refusals,
            ),
            upstream=upstream,
            templates=TemplatePlanning(planning, upstream),
        )
        health.bind(app.execution.reconcile_if_needed)
        if reconcile:
            background = await stack.enter_async_context(anyio.create_task_group())
            # Unwound first: stop the checks still running (a stuck one would hold up shutdown).
            stack.callback(background.cancel_scope.cancel)
            default = settings.default_state_location
            every = await store.list_projects()
            health.start(background, [(p.id, p.settings.state_location or default) for p in every])
        log.info("app_opened", data_dir=str(settings.data_dir), user=settings.user)
        yield app
