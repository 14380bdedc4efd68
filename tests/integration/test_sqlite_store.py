"""What is SQLite-only in SqliteProjectStore: the file, its schema version and its upgrades.

The behaviour every project store shares is in test_project_store_contract.py (run on SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from infra_mcp.domain.audit import AuditEvent
from infra_mcp.domain.project import Member, Project, Role
from infra_mcp.errors import InfraError
from infra_mcp.stores.sqlite import MIGRATIONS, SqliteProjectStore


async def test_a_new_database_is_migrated_to_the_latest_schema(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    async with SqliteProjectStore(path):
        pass
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_a_database_from_a_newer_version_is_refused_with_state_004(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    with pytest.raises(InfraError) as caught:
        await SqliteProjectStore(path).open()
    assert caught.value.code == "STATE_004"


async def test_a_file_that_is_not_a_database_is_refused_as_corrupted_with_state_001(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InfraError) as caught:
        await SqliteProjectStore(path).open()
    assert caught.value.code == "STATE_001"


async def test_upgrading_gives_each_project_its_own_incarnation_and_the_data_it_already_had(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old_doc = '{{"id": "{pid}", "name": "{pid}", "owner": "alice", "members": [{{"user": "alice", "role": "owner"}}], "created_at": "2026-01-01T00:00:00Z"}}'
    with sqlite3.connect(path) as db:  # a database written before incarnations (schema version 1)
        db.executescript(MIGRATIONS[0] + "PRAGMA user_version = 1;")
        for pid in ("web", "api"):
            db.execute(
                "INSERT INTO projects (id, doc, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (pid, old_doc.format(pid=pid), "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
            )
        db.execute(
            "INSERT INTO audit (id, project_id, at, doc) VALUES (?, ?, ?, ?)",
            (
                "e1",
                "web",
                "2026-01-02T00:00:00Z",
                AuditEvent(id="e1", project_id="web", actor="alice", action="x").model_dump_json(),
            ),
        )

    async with SqliteProjectStore(path) as store:
        web, api = await store.get_project("web"), await store.get_project("api")
        events = await store.list_audit("web", incarnation=web.incarnation, unmarked_since=web.created_at)

    assert web.incarnation != api.incarnation
    assert str(uuid.UUID(web.incarnation)) == web.incarnation
    assert uuid.UUID(web.incarnation).version == 4
    assert web.adopts_unmarked_state
    assert api.adopts_unmarked_state
    assert [e.id for e in events] == ["e1"]
    assert (
        Project(id="new", name="new", owner="bob", members=[Member(user="bob", role=Role.OWNER)]).adopts_unmarked_state
        is False
    )
