"""The start-up check of the SQLite database (issue 9, item 3) and its file modes (item 6).

Each damaged or suspicious file stops ``SqliteProjectStore.open`` with an error naming the file and
how to restore it; a brand-new data dir, and a database left behind by a killed process, start fine.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from infra_mcp.domain.project import Member, Project, Role
from infra_mcp.errors import InfraError
from infra_mcp.stores.sqlite import MIGRATIONS, SqliteProjectStore
from infra_mcp.stores.sqlite_integrity import open_lock_path

DB_NAME = "infra-mcp.sqlite3"


def _project(pid: str) -> Project:
    return Project(id=pid, name=pid, owner="alice", members=[Member(user="alice", role=Role.OWNER)])


async def _populated(data_dir: Path, projects: int = 40) -> Path:
    """A real database with enough rows to span several pages, checkpointed into the main file."""
    path = data_dir / DB_NAME
    async with SqliteProjectStore(path) as store:
        for i in range(projects):
            await store.create_project(_project(f"p-{i}"))
    return path


def _used_state(data_dir: Path, project: str = "prod") -> None:
    """What a data dir holds after a project wrote state: <data_dir>/state/<project>/state.json."""
    folder = data_dir / "state" / project
    folder.mkdir(parents=True)
    (folder / "state.json").write_text('{"version": "1.0.0", "projectId": "prod", "serial": 3}')


async def _open_error(path: Path) -> InfraError:
    with pytest.raises(InfraError) as caught:
        await SqliteProjectStore(path).open()
    error = caught.value
    assert str(path) in error.message
    return error


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---- what must start -----------------------------------------------------------------------------


async def test_a_brand_new_data_dir_starts_with_an_empty_database(tmp_path: Path) -> None:
    path = tmp_path / "data" / DB_NAME
    async with SqliteProjectStore(path) as store:
        assert await store.list_projects() == []


async def test_a_zero_length_file_in_an_unused_data_dir_starts_as_new(tmp_path: Path) -> None:
    path = tmp_path / DB_NAME
    path.touch()
    async with SqliteProjectStore(path) as store:
        await store.create_project(_project("web"))


async def test_a_database_left_by_a_killed_process_opens_with_everything_committed(tmp_path: Path) -> None:
    source = tmp_path / "live"
    source.mkdir()
    writer = sqlite3.connect(source / DB_NAME)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.close()
    async with SqliteProjectStore(source / DB_NAME) as store:
        await store.create_project(_project("web"))
        # Copy the files while the store is open: exactly what a SIGKILL leaves (data still in the -wal).
        crashed = tmp_path / "crashed"
        crashed.mkdir()
        for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm"):
            shutil.copyfile(source / name, crashed / name)
    assert (crashed / f"{DB_NAME}-wal").stat().st_size > 0
    async with SqliteProjectStore(crashed / DB_NAME) as reopened:
        assert (await reopened.get_project("web")).owner == "alice"


# ---- what must not start -------------------------------------------------------------------------


async def test_a_zero_length_database_in_a_used_data_dir_is_refused_with_state_001(tmp_path: Path) -> None:
    path = await _populated(tmp_path, projects=1)
    _used_state(tmp_path)
    path.write_bytes(b"")  # `: > infra-mcp.sqlite3`
    error = await _open_error(path)
    assert error.code == "STATE_001"
    assert error.details["problem"] == "empty_but_used"
    assert "infra-mcp db restore" in error.message
    assert path.stat().st_size == 0  # nothing was created or migrated over it


async def test_a_missing_database_beside_project_state_is_refused_with_state_001(tmp_path: Path) -> None:
    _used_state(tmp_path)
    (tmp_path / "secret.key").write_bytes(b"k" * 32)
    error = await _open_error(tmp_path / DB_NAME)
    assert error.code == "STATE_001"
    assert error.details["problem"] == "empty_but_used"
    assert not (tmp_path / DB_NAME).exists()


async def test_a_missing_database_beside_only_the_server_key_starts_as_new(tmp_path: Path) -> None:
    (tmp_path / "secret.key").write_bytes(b"k" * 32)  # the first start creates the key, then the database
    async with SqliteProjectStore(tmp_path / DB_NAME) as store:
        assert await store.list_projects() == []


async def test_a_zero_length_database_beside_the_server_key_is_refused_with_state_001(tmp_path: Path) -> None:
    (tmp_path / "secret.key").write_bytes(b"k" * 32)
    (tmp_path / DB_NAME).touch()
    error = await _open_error(tmp_path / DB_NAME)
    assert error.code == "STATE_001"
    assert error.details["prior_use"] == ["secret.key"]


async def test_a_zero_length_database_with_its_wal_left_is_refused_and_the_wal_kept(tmp_path: Path) -> None:
    path = tmp_path / DB_NAME
    path.touch()
    (tmp_path / f"{DB_NAME}-wal").write_bytes(b"w" * 4096)
    error = await _open_error(path)
    assert error.code == "STATE_001"
    # SQLite deletes the WAL of a zero-length database when it opens it: the check must come first.
    assert (tmp_path / f"{DB_NAME}-wal").stat().st_size == 4096


async def test_a_schema_less_database_in_a_used_data_dir_is_refused_with_state_001(tmp_path: Path) -> None:
    _used_state(tmp_path)
    path = tmp_path / DB_NAME
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE scratch (x)")
        db.execute("DROP TABLE scratch")  # a valid SQLite file with no tables at all
    error = await _open_error(path)
    assert error.code == "STATE_001"
    assert error.details["problem"] == "empty_but_used"


async def test_a_truncated_database_is_refused_with_state_001(tmp_path: Path) -> None:
    path = await _populated(tmp_path)
    size = path.stat().st_size
    assert size >= 4 * 4096
    with path.open("r+b") as handle:
        handle.truncate(size // 2)
    error = await _open_error(path)
    assert error.code == "STATE_001"
    assert error.details["problem"] == "truncated"


async def test_a_database_with_a_garbage_header_is_refused_with_state_001(tmp_path: Path) -> None:
    path = await _populated(tmp_path)
    with path.open("r+b") as handle:
        handle.write(b"\x00garbage header!")
    error = await _open_error(path)
    assert error.code == "STATE_001"
    assert error.details["problem"] == "not_a_database"


async def test_a_database_with_a_corrupted_page_is_refused_with_state_001(tmp_path: Path) -> None:
    path = await _populated(tmp_path)
    with sqlite3.connect(path) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'projects'").fetchone()[0]
    with path.open("r+b") as handle:
        handle.seek((root - 1) * page_size)
        handle.write(b"\xff" * page_size)
    error = await _open_error(path)
    assert error.code == "STATE_001"
    assert error.details["problem"] in {"integrity_check_failed", "not_a_database"}


async def test_a_database_from_a_newer_infra_mcp_is_refused_with_state_004(tmp_path: Path) -> None:
    path = await _populated(tmp_path, projects=1)
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    error = await _open_error(path)
    assert error.code == "STATE_004"
    assert error.details["problem"] == "newer_schema"


async def test_opening_during_a_restore_is_refused_with_state_004(tmp_path: Path) -> None:
    path = await _populated(tmp_path, projects=1)
    fd = os.open(open_lock_path(path), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        error = await _open_error(path)
    finally:
        os.close(fd)
    assert error.code == "STATE_004"
    assert error.details["problem"] == "restore_in_progress"


# ---- file modes ----------------------------------------------------------------------------------


async def test_a_new_data_dir_is_0700_and_the_database_files_0600(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    path = data_dir / DB_NAME
    async with SqliteProjectStore(path) as store:
        await store.create_project(_project("web"))
        assert _mode(data_dir) == 0o700
        for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}.lock"):
            assert _mode(data_dir / name) == 0o600, name


async def test_looser_modes_are_tightened_on_open_with_a_warning(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    path = await _populated(data_dir, projects=1)
    data_dir.chmod(0o755)
    path.chmod(0o644)
    with capture_logs() as logs:
        async with SqliteProjectStore(path):
            pass
    assert _mode(data_dir) == 0o700
    assert _mode(path) == 0o600
    tightened = {e["path"] for e in logs if e["event"] == "file_mode_tightened"}
    assert tightened == {str(data_dir), str(path)}
