"""A real PostgreSQL for tests, one fresh schema per test (dropped afterwards).

The server is ``INFRA_MCP_TEST_DATABASE_URL`` (default: this project's machines' PostgreSQL, trust
auth on 127.0.0.1:5432, database ``test``). Other test runs may share it at the same time, so a test
never touches anything outside its own schema: the store's URL carries ``search_path=<schema>``.

When the server cannot be reached, PostgreSQL tests are skipped with the reason, unless
``INFRA_MCP_TEST_POSTGRES=required`` (``.ci/run`` sets it after starting the server): then they fail.
"""

from __future__ import annotations

import asyncio
import functools
import os
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import asyncpg
import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    return os.environ.get("INFRA_MCP_TEST_DATABASE_URL", DEFAULT_URL)


@functools.cache
def unavailable_reason() -> str | None:
    """Why PostgreSQL tests cannot run here, or None when the server answers (asked once per session)."""

    async def probe() -> None:
        connection = await asyncpg.connect(server_url(), timeout=5)
        await connection.close()

    try:
        # In a thread of its own: the caller may already be inside an event loop.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, probe()).result()
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"no PostgreSQL at {server_url()} ({type(exc).__name__}: {exc}); start it or set INFRA_MCP_TEST_DATABASE_URL"
    return None


def require_postgres() -> None:
    """Skip the calling test (or fail it, where PostgreSQL is required) when the server is not there."""
    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get("INFRA_MCP_TEST_POSTGRES") == "required":
        pytest.fail(f"INFRA_MCP_TEST_POSTGRES=required, but {reason}")
    pytest.skip(reason)


def with_search_path(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}search_path={schema}"


@asynccontextmanager
async def fresh_schema() -> AsyncIterator[str]:
    """Create an empty schema, yield a database URL whose tables live in it, drop it after."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(server_url(), timeout=10)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield with_search_path(server_url(), schema)
        finally:
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await admin.close()
