"""The one place that wires adapters into services, from one frozen Settings.

Both the MCP server's lifespan and the CLI (``infra-mcp plans ...``) open the same App, so a
person approving out of band works on exactly the database the server uses.

Every service reaches project state through :class:`~infra_mcp.services.health.TrackedStates`, so
one project's failing storage degrades that project only (issue 16).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import anyio
import structlog

from infra_mcp.catalog import Catalog, default_catalog
from infra_mcp.domain.common import utcnow
from infra_mcp.domain.integrity import AuditChain, Notary, derive
from infra_mcp.domain.sealed import use_digest_key
from infra_mcp.domain.type_catalog import TypeCatalog
from infra_mcp.ports import ProjectStore, StateStores, Upstream
from infra_mcp.services.approvals import ApprovalService
from infra_mcp.services.audit import AuditService, RefusalGate
from infra_mcp.services.drift import DriftService
from infra_mcp.services.execution import ExecutionService
from infra_mcp.services.execution.operations import PollPolicy, Sleep
from infra_mcp.services.health import HealthService, TrackedStates
from infra_mcp.services.imports import ImportService
from infra_mcp.services.keys import ServerKey
from infra_mcp.services.planning import PlanningService
from infra_mcp.services.projects import ProjectService
from infra_mcp.services.secrets import SecretSealer
from infra_mcp.services.state import StateService
from infra_mcp.services.templates import TemplatePlanning
from infra_mcp.settings import Settings
from infra_mcp.stores.project_factory import ProjectDatabase, describe_database, make_project_store
from infra_mcp.stores.state_factory import StateStoreRegistry
from infra_mcp.upstream.factory import make_upstream

log = structlog.get_logger(__name__)


@dataclass
class App:
    settings: Settings
    store: ProjectDatabase
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
    drift: DriftService
    imports: ImportService


@dataclass
class PlanServices:
    """The plan's use cases, wired over the ports (see :func:`wire_plan_services`)."""

    planning: PlanningService
    approvals: ApprovalService
    execution: ExecutionService


def wire_plan_services(
    store: ProjectStore,
    states: StateStores,
    upstream: Upstream,
    catalog: TypeCatalog,
    sealer: SecretSealer,
    *,
    notary: Notary,
    refusals: RefusalGate | None = None,
    settle: Callable[[str], Awaitable[object]] | None = None,
    clock: Callable[[], datetime] = utcnow,
    sleep: Sleep = anyio.sleep,
    poll: PollPolicy | None = None,
    parallelism: int = 10,
    checkpoint_interval: float = 2.0,
    checkpoint_every: int = 25,
) -> PlanServices:
    """Planning, approval and execution over any adapters: production's, or a test's fakes.

    :func:`open_app` wires production through here, and the unit tests' ``World`` wires its fakes the
    same way, so both run the same wiring (auto-approval inside planning, one refusal gate).
    """
    refusals = refusals or RefusalGate(store, clock=clock)
    approvals = ApprovalService(store, states, notary=notary, clock=clock, refusals=refusals)
    planning = PlanningService(
        store, states, catalog, sealer, notary=notary, settle=settle, approve_by_rule=approvals.apply_rules
    )
    execution = ExecutionService(
        store,
        states,
        upstream,
        catalog,
        sealer,
        notary=notary,
        parallelism=parallelism,
        checkpoint_interval=checkpoint_interval,
        checkpoint_every=checkpoint_every,
        poll=poll,
        clock=clock,
        sleep=sleep,
        refusals=refusals,
    )
    return PlanServices(planning=planning, approvals=approvals, execution=execution)


@asynccontextmanager
async def open_app(
    settings: Settings, *, upstream: Upstream | None = None, reconcile: bool = True
) -> AsyncIterator[App]:
    """Open the project database (SQLite, or PostgreSQL when ``INFRA_MCP_DATABASE_URL`` is set),
    state stores and the upstream; close them after.

    Opening does not wait on any project's storage nor on the upstream (it connects lazily, on its
    first call). With ``reconcile``, every project is checked in the background, each with a
    deadline, and executions interrupted by a crash are reconciled; a call on a project not reached
    yet reconciles it first (see :class:`~infra_mcp.services.health.HealthService`).
    """
    async with AsyncExitStack() as stack:
        key = ServerKey(settings.key_path).get()
        chain = AuditChain(key)
        use_digest_key(derive(key, "digest"))
        store = make_project_store(settings, chain=chain)
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
        plans = wire_plan_services(
            store,
            states,
            upstream,
            catalog,
            sealer,
            notary=notary,
            refusals=refusals,
            settle=health.settle_pending,
            parallelism=settings.execution_parallelism,
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
            planning=plans.planning,
            approvals=plans.approvals,
            audit=AuditService(store, chain),
            execution=plans.execution,
            upstream=upstream,
            templates=TemplatePlanning(plans.planning, upstream),
            drift=DriftService(
                store, store, states, upstream, catalog, plans.planning, parallelism=settings.execution_parallelism
            ),
            imports=ImportService(store, states, upstream, catalog, plans.planning),
        )
        health.bind(app.execution.reconcile_if_needed)
        if reconcile:
            background = await stack.enter_async_context(anyio.create_task_group())
            # Unwound first: stop the checks still running (a stuck one would hold up shutdown).
            stack.callback(background.cancel_scope.cancel)
            default = settings.default_state_location
            every = await store.list_projects()
            health.start(background, [(p.id, p.settings.state_location or default) for p in every])
        log.info(
            "app_opened", data_dir=str(settings.data_dir), database=describe_database(settings), user=settings.user
        )
        yield app
