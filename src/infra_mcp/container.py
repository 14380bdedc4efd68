"""The one place that wires adapters into services, from one frozen Settings.

Both the MCP server's lifespan and the CLI (``infra-mcp plans ...``) open the same App, so a
person approving out of band works on exactly the database the server uses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import structlog

from infra_mcp.catalog import Catalog, default_catalog
from infra_mcp.domain.integrity import AuditChain, Notary, derive
from infra_mcp.domain.sealed import use_digest_key
from infra_mcp.ports import Upstream
from infra_mcp.services.approvals import ApprovalService
from infra_mcp.services.audit import AuditService, RefusalGate
from infra_mcp.services.execution import ExecutionService
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
    states: StateStoreRegistry
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

    The upstream connects lazily (on its first call), so opening is cheap. With ``reconcile``,
    executions interrupted by a crash are reconciled before the app is handed out.
    """
    async with AsyncExitStack() as stack:
        key = ServerKey(settings.key_path).get()
        chain = AuditChain(key)
        use_digest_key(derive(key, "digest"))
        store = SqliteProjectStore(settings.database_path, chain=chain)
        await store.open()
        stack.push_async_callback(store.close)
        states = StateStoreRegistry(settings)
        catalog = default_catalog()
        projects = ProjectService(store, states)
        sealer = SecretSealer(settings.key_path)
        notary = Notary(key)
        refusals = RefusalGate(store)
        if upstream is None:
            upstream = make_upstream(settings)
            stack.push_async_callback(upstream.aclose)
        planning = PlanningService(store, states, catalog, sealer, notary=notary)
        app = App(
            settings=settings,
            store=store,
            states=states,
            catalog=catalog,
            projects=projects,
            state=StateService(projects),
            planning=planning,
            approvals=ApprovalService(store, states, notary=notary, refusals=refusals),
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
        if reconcile:
            for report in await app.execution.reconcile_all():
                log.warning("reconciled_interrupted_execution", report=report.model_dump(mode="json"))
        log.info("app_opened", data_dir=str(settings.data_dir), user=settings.user)
        yield app
