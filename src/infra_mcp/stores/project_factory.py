"""Picks the project store the settings name: PostgreSQL when ``INFRA_MCP_DATABASE_URL`` is set
(a team server, several replicas), else SQLite in the data dir (one machine, the default)."""

from __future__ import annotations

from infra_mcp.domain.integrity import AuditChain
from infra_mcp.settings import Settings
from infra_mcp.stores.postgres import PostgresProjectStore
from infra_mcp.stores.sqlite import SqliteProjectStore

ProjectDatabase = SqliteProjectStore | PostgresProjectStore


def make_project_store(settings: Settings, *, chain: AuditChain | None = None) -> ProjectDatabase:
    """The configured store, not opened yet (``await store.open()``)."""
    if settings.database_url:
        return PostgresProjectStore(settings.database_url, chain=chain, pool_size=settings.database_pool_size)
    return SqliteProjectStore(settings.database_path, chain=chain)


def describe_database(settings: Settings) -> str:
    """Where projects live, for logs and messages (a PostgreSQL password is never shown)."""
    if settings.database_url:
        return PostgresProjectStore(settings.database_url).where
    return str(settings.database_path)
