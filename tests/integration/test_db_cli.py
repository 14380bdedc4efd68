"""``infra-mcp db backup | check | restore``, and start-up refusing a damaged database without a traceback."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import structlog

from infra_mcp.cli import main
from infra_mcp.domain.project import Member, Project, Role
from infra_mcp.stores.sqlite import SqliteProjectStore

DB_NAME = "infra-mcp.sqlite3"


def _project(pid: str) -> Project:
    return Project(id=pid, name=pid, owner="alice", members=[Member(user="alice", role=Role.OWNER)])


def _db(data_dir: Path, *args: str) -> int:
    return main(["db", "--data-dir", str(data_dir), *args])


async def _with_projects(data_dir: Path, *ids: str) -> Path:
    async with SqliteProjectStore(data_dir / DB_NAME) as store:
        for pid in ids:
            await store.create_project(_project(pid))
    return data_dir / DB_NAME


async def _project_ids(path: Path) -> list[str]:
    async with SqliteProjectStore(path) as store:
        return [p.id for p in await store.list_projects()]


def _damage(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.write(b"not an sqlite header at all")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """``main`` points logging at this test's captured stderr; later tests must not log into a closed file."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


# ---- backup ----------------------------------------------------------------------------------------


async def test_a_backup_taken_while_the_database_is_open_holds_every_committed_row(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "backup.sqlite3"
    async with SqliteProjectStore(data_dir / DB_NAME) as live:
        await live.create_project(_project("web"))
        await live.create_project(_project("prod"))
        assert _db(data_dir, "backup", str(target)) == 0  # the server keeps running meanwhile
        await live.create_project(_project("later"))
    assert "2 projects" in capsys.readouterr().out
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not Path(f"{target}-wal").exists()  # one self-contained file
    assert sorted(await _project_ids(target)) == ["prod", "web"]


async def test_a_backup_never_overwrites_a_file_without_force(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _with_projects(data_dir, "web")
    target = tmp_path / "backup.sqlite3"
    target.write_text("keep me")
    assert _db(data_dir, "backup", str(target)) == 1
    assert "CONFLICT_001" in capsys.readouterr().err
    assert target.read_text() == "keep me"
    assert _db(data_dir, "backup", str(target), "--force") == 0
    assert await _project_ids(target) == ["web"]
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


async def test_a_backup_of_a_damaged_database_is_refused_naming_it_and_writes_nothing(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = await _with_projects(data_dir, *(f"p-{i}" for i in range(40)))
    with sqlite3.connect(path) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'projects'").fetchone()[0]
    db.close()
    with path.open("r+b") as handle:
        handle.seek((root - 1) * page_size)
        handle.write(b"\xff" * page_size)
    assert _db(data_dir, "backup", str(tmp_path / "backup.sqlite3")) == 1
    err = capsys.readouterr().err
    assert err.startswith("STATE_001")
    assert str(path) in err
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == []


# ---- check -----------------------------------------------------------------------------------------


async def test_check_passes_a_healthy_database_and_fails_a_damaged_one_with_its_code(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = await _with_projects(data_dir, "web")
    assert _db(data_dir, "check") == 0
    assert "ok" in capsys.readouterr().out
    _damage(path)
    assert _db(data_dir, "check") == 1
    err = capsys.readouterr().err
    assert err.startswith("STATE_001")
    assert str(path) in err


def test_check_of_a_brand_new_data_dir_passes(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "check", "--data-dir", str(data_dir)]) == 0  # the option also goes after the action
    assert "no database" in capsys.readouterr().out


# ---- restore ---------------------------------------------------------------------------------------


async def test_restore_replaces_a_damaged_database_and_keeps_it_aside(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = await _with_projects(data_dir, "web", "prod")
    backup = tmp_path / "backup.sqlite3"
    assert _db(data_dir, "backup", str(backup)) == 0
    _damage(path)
    damaged = path.read_bytes()
    Path(f"{path}-wal").write_bytes(b"stale wal of the damaged file")

    assert _db(data_dir, "restore", str(backup)) == 0
    assert "kept as" in capsys.readouterr().out
    [aside] = data_dir.glob(f"{DB_NAME}.broken-*[0-9]Z")
    assert aside.read_bytes() == damaged
    assert Path(f"{aside}-wal").read_bytes() == b"stale wal of the damaged file"
    assert not Path(f"{path}-wal").exists()  # a stale WAL must never be replayed onto the restored file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(await _project_ids(path)) == ["prod", "web"]
    assert _db(data_dir, "check") == 0


async def test_restore_refuses_a_damaged_backup_and_leaves_the_database_alone(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = await _with_projects(data_dir, "web")
    backup = tmp_path / "backup.sqlite3"
    assert _db(data_dir, "backup", str(backup)) == 0
    with backup.open("r+b") as handle:
        handle.truncate(backup.stat().st_size - 1024)
    before = path.read_bytes()
    assert _db(data_dir, "restore", str(backup)) == 1
    assert capsys.readouterr().err.startswith("STATE_001")
    assert path.read_bytes() == before
    assert list(data_dir.glob("*.broken-*")) == []


async def test_restore_refuses_while_a_server_has_the_database_open(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _with_projects(data_dir, "web")
    backup = tmp_path / "backup.sqlite3"
    assert _db(data_dir, "backup", str(backup)) == 0
    async with SqliteProjectStore(data_dir / DB_NAME) as live:
        assert _db(data_dir, "restore", str(backup)) == 1
        assert capsys.readouterr().err.startswith("STATE_003")
        assert await live.get_project("web")
    assert list(data_dir.glob("*.broken-*")) == []


async def test_restore_refuses_a_file_that_is_not_an_infra_mcp_database(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _with_projects(data_dir, "web")
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE unrelated (x)")
    assert _db(data_dir, "restore", str(other)) == 1
    assert capsys.readouterr().err.startswith("VALIDATION_001")


# ---- start-up on a damaged database, as a person sees it --------------------------------------------


def _zero_length_in_used_dir(data_dir: Path) -> Path:
    path = anyio.run(_with_projects, data_dir, "web")
    key = data_dir / "secret.key"
    key.write_bytes(b"k" * 32)
    key.chmod(0o600)
    path.write_bytes(b"")
    return path


@pytest.mark.slow
def test_serve_on_a_zero_length_database_prints_the_error_and_exits_non_zero(data_dir: Path) -> None:
    path = _zero_length_in_used_dir(data_dir)
    env = {**os.environ, "INFRA_MCP_DATA_DIR": str(data_dir), "INFRA_MCP_USER": "alice"}
    done = subprocess.run(
        [sys.executable, "-m", "infra_mcp", "serve"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""  # stdout is the MCP channel: nothing but protocol there
    assert "STATE_001" in done.stderr
    assert "infra-mcp db restore" in done.stderr
    assert "Traceback" not in done.stderr
    assert path.stat().st_size == 0


def test_plans_on_a_zero_length_database_prints_the_error_and_exits_non_zero(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _zero_length_in_used_dir(data_dir)
    monkeypatch.setenv("INFRA_MCP_DATA_DIR", str(data_dir))
    capsys.readouterr()  # the set-up's own log lines
    assert main(["plans", "list", "web"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("STATE_001")
    assert "infra-mcp db restore" in " ".join(err.split())  # rich wraps long lines
    assert path.stat().st_size == 0
