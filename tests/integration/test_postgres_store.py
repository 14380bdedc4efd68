"""What is PostgreSQL-only in PostgresProjectStore: versioned migrations, replicas starting together,
an unreachable or newer database, and the settings that select it.

The behaviour every project store shares is in test_project_store_contract.py."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest
import structlog
from pydantic import ValidationError
from structlog.testing import capture_logs

from infra_mcp.cli import main
from infra_mcp.container import open_app
from infra_mcp.domain.project import Member, Project, Role
from infra_mcp.errors import InfraError
from infra_mcp.settings import Settings
from infra_mcp.stores.postgres import MIGRATIONS, PostgresProjectStore, redact_url
from infra_mcp.stores.project_factory import describe_database, make_project_store
from infra_mcp.stores.sqlite import SqliteProjectStore
from tests.postgres_support import fresh_schema


def _project() -> Project:
    return Project(id="web", name="web", owner="alice", members=[Member(user="alice", role=Role.OWNER)])


async def _versions(url: str) -> list[int]:
    connection = await asyncpg.connect(url)
    try:
        return [r["version"] for r in await connection.fetch("SELECT version FROM infra_mcp_migrations ORDER BY 1")]
    finally:
        await connection.close()


async def test_a_new_database_records_every_migration_once_and_reopening_adds_none() -> None:
    async with fresh_schema() as url:
        async with PostgresProjectStore(url) as store:
            assert await store.applied_version() == len(MIGRATIONS)
        async with PostgresProjectStore(url):
            pass
        assert await _versions(url) == list(range(1, len(MIGRATIONS) + 1))


async def test_replicas_starting_together_on_an_empty_database_migrate_it_once() -> None:
    async with fresh_schema() as url:
        opened: list[PostgresProjectStore] = []

        async def start() -> None:
            opened.append(await PostgresProjectStore(url, pool_size=2).open())

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(start)
        for store in opened:
            await store.close()
        assert len(opened) == 4
        assert await _versions(url) == list(range(1, len(MIGRATIONS) + 1))


async def test_a_database_migrated_by_a_newer_release_is_refused_with_state_004() -> None:
    async with fresh_schema() as url:
        async with PostgresProjectStore(url):
            pass
        connection = await asyncpg.connect(url)
        await connection.execute("INSERT INTO infra_mcp_migrations (version) VALUES ($1)", len(MIGRATIONS) + 1)
        await connection.close()
        with pytest.raises(InfraError) as caught:
            await PostgresProjectStore(url).open()
    assert caught.value.code == "STATE_004"
    assert caught.value.details["schema_version"] == len(MIGRATIONS) + 1


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_database_is_state_004_without_its_password() -> None:
    url = f"postgresql://infra:s3cret-pass@127.0.0.1:{_closed_port()}/infra"
    with pytest.raises(InfraError) as caught:
        await PostgresProjectStore(url).open()
    assert caught.value.code == "STATE_004"
    assert "s3cret-pass" not in str(caught.value.to_dict())
    assert "127.0.0.1" in caught.value.message


async def _end_sessions(url: str, application_name: str) -> None:
    """End a store's server sessions, as a PostgreSQL restart or a failover would."""
    admin = await asyncpg.connect(url)
    try:
        ended = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            application_name,
        )
    finally:
        await admin.close()
    assert ended == 1


async def test_a_store_whose_server_sessions_were_ended_keeps_serving() -> None:
    async with fresh_schema() as url:
        name = f"victim-{uuid.uuid4().hex[:8]}"
        async with PostgresProjectStore(f"{url}&application_name={name}", pool_size=1) as store:
            await store.create_project(_project())
            await _end_sessions(url, name)
            assert (await store.get_project("web")).owner == "alice"
            await store.delete_project("web")


class _CutOffPool:
    """The store's pool, except that the first ``failures`` calls of ``method`` fail as a dropped
    connection does."""

    def __init__(self, real: asyncpg.Pool, method: str, failures: int) -> None:
        self.real, self.method, self.failures, self.calls = real, method, failures, 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.real, name)
        if name != self.method:
            return attribute

        def cut(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls <= self.failures:
                raise asyncpg.InternalClientError("cannot switch to state 11; another operation (2) is in progress")
            return attribute(*args, **kwargs)

        return cut


async def test_a_read_cut_off_by_a_lost_connection_is_tried_once_more(monkeypatch: pytest.MonkeyPatch) -> None:
    async with fresh_schema() as url, PostgresProjectStore(url) as store:
        await store.create_project(_project())
        cut = _CutOffPool(store.pool, "fetchval", failures=1)
        monkeypatch.setattr(store, "_pool", cut)
        assert (await store.get_project("web")).owner == "alice"
        assert cut.calls == 2


async def test_a_read_failing_twice_is_state_004(monkeypatch: pytest.MonkeyPatch) -> None:
    async with fresh_schema() as url, PostgresProjectStore(url) as store:
        monkeypatch.setattr(store, "_pool", _CutOffPool(store.pool, "fetchval", failures=2))
        with pytest.raises(InfraError) as caught:
            await store.get_project("web")
    assert caught.value.code == "STATE_004"


async def test_a_write_cut_off_is_state_004_and_not_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether a commit cut off mid-way took effect is unknown: the caller is told, nothing is repeated."""
    async with fresh_schema() as url, PostgresProjectStore(url) as store:
        cut = _CutOffPool(store.pool, "acquire", failures=1)
        monkeypatch.setattr(store, "_pool", cut)
        with pytest.raises(InfraError) as caught:
            await store.create_project(_project())
        assert caught.value.code == "STATE_004"
        assert cut.calls == 1
        await store.create_project(_project())  # the next call goes through
        assert [p.id for p in await store.list_projects()] == ["web"]


def test_redacting_a_url_hides_only_the_password() -> None:
    assert redact_url("postgresql://infra:pw@db.internal:5432/infra?sslmode=require") == (
        "postgresql://infra:***@db.internal:5432/infra?sslmode=require"
    )
    assert redact_url("postgresql://postgres@127.0.0.1/test") == "postgresql://postgres@127.0.0.1/test"


def test_the_database_url_selects_the_store_and_sqlite_stays_the_default(tmp_path: object) -> None:
    assert isinstance(make_project_store(Settings(data_dir=str(tmp_path))), SqliteProjectStore)
    chosen = make_project_store(Settings(data_dir=str(tmp_path), database_url="postgresql://u:pw@h/db"))
    assert isinstance(chosen, PostgresProjectStore)
    assert describe_database(Settings(database_url="postgresql://u:pw@h/db")) == "postgresql://u:***@h/db"


@pytest.mark.parametrize("url", ["mysql://u:hunter2@h/db", "sqlite:///tmp/x.db", "h/db"])
def test_a_database_url_that_is_not_postgresql_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(database_url=url)
    assert "postgresql://" in str(caught.value)
    assert "hunter2" not in str(caught.value)


async def test_the_app_opens_on_postgresql_when_the_url_is_set(tmp_path: object) -> None:
    async with fresh_schema() as url:
        settings = Settings(data_dir=str(tmp_path), database_url=url, user="alice")
        async with open_app(settings, reconcile=False) as app:
            assert isinstance(app.store, PostgresProjectStore)
            await app.projects.create_project("web", name=None, description="", user="alice")
            assert [p.id for p in await app.store.list_projects()] == ["web"]


# --------------------------------------------------------------------------- infra-mcp db ... on PostgreSQL


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """``main`` points logging at this test's captured stderr; later tests must not log into a closed file."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


async def _db(monkeypatch: pytest.MonkeyPatch, url: str, *args: str) -> int:
    monkeypatch.setenv("INFRA_MCP_DATABASE_URL", url)
    # The command runs its own event loop, as it does from a terminal: in a thread of its own here.
    return await anyio.to_thread.run_sync(main, ["db", *args])


@pytest.mark.usefixtures("logging_restored")
async def test_db_check_on_postgresql_reports_the_schema_and_counts_without_changing_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with fresh_schema() as url:
        assert await _db(monkeypatch, url, "check") == 0
        assert "no infra-mcp tables yet" in capsys.readouterr().out
        with pytest.raises(asyncpg.UndefinedTableError):  # check created nothing
            await _versions(url)
        async with PostgresProjectStore(url) as store:
            await store.create_project(_project())
        assert await _db(monkeypatch, url, "check") == 0
    said = capsys.readouterr().out
    assert f"schema {len(MIGRATIONS)}" in said
    assert "1 projects" in said


@pytest.mark.usefixtures("logging_restored")
async def test_db_check_on_an_unreachable_postgresql_fails_with_state_004(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _db(monkeypatch, f"postgresql://u:pw-never-shown@127.0.0.1:{_closed_port()}/x", "check") == 1
    said = capsys.readouterr().err
    assert said.startswith("STATE_004")
    assert "pw-never-shown" not in said


@pytest.mark.usefixtures("logging_restored")
@pytest.mark.parametrize("command", [["backup", "copy.dump"], ["restore", "copy.dump"]])
async def test_db_backup_and_restore_on_postgresql_refuse_and_name_pg_dump(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert await _db(monkeypatch, "postgresql://u:pw@127.0.0.1:1/x", *command) == 1
    said = capsys.readouterr().err
    assert said.startswith("VALIDATION_001")
    assert "pg_dump" in said
    assert list(tmp_path.iterdir()) == []  # nothing written


# --------------------------------------------------------------------------- replicas telling each other


async def test_an_announcement_reaches_the_other_replicas_on_the_same_schema_only() -> None:
    heard: dict[str, list[str]] = {"self": [], "other": [], "elsewhere": []}

    def recorder(name: str) -> Any:
        async def record(project_id: str) -> None:
            heard[name].append(project_id)

        return record

    async with (
        fresh_schema() as url,
        fresh_schema() as elsewhere_url,
        PostgresProjectStore(url) as one,
        PostgresProjectStore(url) as two,
        PostgresProjectStore(elsewhere_url) as elsewhere,
        one.listening(recorder("self")),
        two.listening(recorder("other")),
        elsewhere.listening(recorder("elsewhere")),
    ):
        await one.announce("web")
        with anyio.fail_after(10):
            while not heard["other"]:
                await anyio.sleep(0.05)
        await anyio.sleep(0.3)  # time enough for a wrong delivery to show
    assert heard == {"self": [], "other": ["web"], "elsewhere": []}


def test_a_database_url_with_a_malformed_port_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(database_url="postgresql://u:hunter2@db:notaport/infra")
    assert "port" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert redact_url("postgresql://u:hunter2@db:notaport/infra") == "postgresql://u:***@db:notaport/infra"


async def test_a_replica_listens_again_after_its_listening_connection_is_lost() -> None:
    heard: list[str] = []

    async def record(project_id: str) -> None:
        heard.append(project_id)

    async with fresh_schema() as url:
        name = f"listener-{uuid.uuid4().hex[:8]}"
        async with PostgresProjectStore(url) as one, PostgresProjectStore(f"{url}&application_name={name}") as two:
            two.relisten_seconds = 0.2
            with capture_logs() as logs:
                async with two.listening(record):
                    await anyio.sleep(0.2)  # listening
                    admin = await asyncpg.connect(url)
                    try:
                        ended = await admin.fetchval(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                            name,
                        )
                    finally:
                        await admin.close()
                    assert ended >= 1
                    with anyio.fail_after(15):
                        while not heard:  # announcements while it reconnects are missed: keep announcing
                            await one.announce("web")
                            await anyio.sleep(0.2)
    assert set(heard) == {"web"}
    said = [entry["event"] for entry in logs]
    assert said.index("pending_relay_connection_lost") < said.index("pending_relay_listening_again")
