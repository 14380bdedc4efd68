"""The one place that wires adapters into services, from one frozen Settings.

Both the MCP server's lifespan and the CLI (``infra-mcp plans ...``) open the same App, so a
person approving out of band works on exactly the database the server uses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog

from infra_mcp.catalog import Catalog, default_catalog
from infra_mcp.services.projects import ProjectService
from infra_mcp.services.state import StateService
from infra_mcp.settings import Settings
from infra_mcp.stores.sqlite import SqliteProjectStore
from infra_mcp.stores.state_factory import StateStoreRegistry

log = structlog.get_logger(__name__)


@dataclass
class App:
    settings: Settings
    store: SqliteProjectStore
    states: StateStoreRegistry
    catalog: Catalog
    projects: ProjectService
    state: StateService
    services: dict[str, Any] = field(default_factory=dict)


@asynccontextmanager
async def open_app(settings: Settings, *, with_upstream: bool = True) -> AsyncIterator[App]:
    """Open the database, state stores and (optionally) the upstream connection; close them after."""
    async with AsyncExitStack() as stack:
        store = SqliteProjectStore(settings.database_path)
        await store.open()
        stack.push_async_callback(store.close)
        states = StateStoreRegistry(settings)
        catalog = default_catalog()
        projects = ProjectService(store, states)
        app = App(
            settings=settings,
            store=store,
            states=states,
            catalog=catalog,
            projects=projects,
            state=StateService(projects),
        )
        log.info("app_opened", data_dir=str(settings.data_dir), user=settings.user)
        yield app
