"""``infra-mcp db backup | check | restore``: keep the project database safe (issue 9, item 3).

- ``backup PATH`` copies the live database with SQLite's online backup API, so it is safe while
  the server runs; the copy is checked, written ``0600`` and never overwrites a file without ``--force``.
- ``check`` runs the start-up check with the full ``PRAGMA integrity_check``; the exit code says
  whether the server would start on the file.
- ``restore BACKUP`` checks the backup first, refuses while any infra-mcp process has the database
  open, keeps the current file (and its ``-wal``/``-shm``) aside as ``*.broken-<timestamp>``, and
  swaps the verified copy in with one atomic rename.

This is a terminal program: printing is its job (results on stdout, errors on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import shutil
import sqlite3
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from infra_mcp.errors import AlreadyExists, InfraError, NotFound, StateCorrupted, StateLocked, ValidationFailed
from infra_mcp.file_modes import PRIVATE_FILE, ensure_private_dir, fsync_dir
from infra_mcp.settings import Settings
from infra_mcp.stores.postgres import PostgresProjectStore
from infra_mcp.stores.sqlite import MIGRATIONS
from infra_mcp.stores.sqlite_integrity import RESTORE_HINT, DatabaseReport, check_database, open_lock_path, sidecars


def add_db_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``db`` command and its actions to the top-level subparsers."""
    where = "the data dir (default: INFRA_MCP_DATA_DIR or the user data dir)"
    db = sub.add_parser("db", help="back up, check and restore the project database")
    db.add_argument("--data-dir", type=Path, help=where)
    # --data-dir is accepted before or after the action, as `plans` accepts its options.
    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help=where)
    actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    backup = actions.add_parser(
        "backup", help="copy the database to PATH (safe while the server runs)", parents=[data_dir]
    )
    backup.add_argument("path", type=Path)
    backup.add_argument("--force", action="store_true", help="overwrite PATH if it exists")
    actions.add_parser(
        "check", help="run the integrity check the server runs at start-up (exit code 0: ok)", parents=[data_dir]
    )
    restore = actions.add_parser(
        "restore", help="replace the database with a checked backup (server stopped)", parents=[data_dir]
    )
    restore.add_argument("backup", type=Path)


def run_db_command(args: argparse.Namespace) -> int:
    """Run one ``db`` action; print the outcome. Returns the exit code (0 ok, 1 refused or failed)."""
    settings = Settings(data_dir=args.data_dir) if args.data_dir else Settings()
    if settings.database_url:
        return _run_on_postgres(args, settings.database_url)
    database = settings.database_path
    try:
        if args.db_command == "backup":
            report = backup_database(database, args.path, force=args.force)
            print(f"Backed up {database} to {args.path} ({_counts(report)}); the copy passed integrity_check.")
        elif args.db_command == "check":
            report = check_database(database, known_version=len(MIGRATIONS), full=True)
            if report.exists:
                print(f"ok: {database} passed integrity_check (schema {report.schema_version}; {_counts(report)}).")
            else:
                print(f"ok: no database at {database} yet; a new one is created at the first start.")
        else:
            aside, report = restore_database(database, args.backup)
            kept = f" The previous file is kept as {aside}." if aside else ""
            print(f"Restored {database} from {args.backup} ({_counts(report)}).{kept}")
    except InfraError as exc:
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        return 1
    return 0


def _run_on_postgres(args: argparse.Namespace, url: str) -> int:
    """``db check`` on PostgreSQL; ``backup`` and ``restore`` are PostgreSQL's own tools' job there."""
    store = PostgresProjectStore(url)
    try:
        if args.db_command != "check":
            raise ValidationFailed(
                f"`infra-mcp db {args.db_command}` handles the SQLite file only, and INFRA_MCP_DATABASE_URL points at "
                f"PostgreSQL ({store.where}). Use PostgreSQL's tools on that database: `pg_dump --format=custom --file=BACKUP` to back up (safe while "
                "the servers run), `pg_restore --clean --if-exists --dbname=... BACKUP` with every replica stopped to "
                "restore. Back up the server key too.",
                details={"database": store.where, "command": args.db_command},
            )
        version, counts = asyncio.run(store.inspect())
    except InfraError as exc:
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        return 1
    if version == 0:
        print(f"ok: {store.where} answers and holds no infra-mcp tables yet; the first server start creates them.")
    else:
        report = DatabaseReport(path=Path(store.where), exists=True, schema_version=version, counts=counts)
        print(f"ok: {store.where} answers (PostgreSQL, schema {version}; {_counts(report)}).")
    return 0


def backup_database(database: Path, target: Path, *, force: bool = False) -> DatabaseReport:
    """Copy ``database`` to ``target`` with the online backup API, check the copy, then publish it.

    Raises:
        NotFound: RESOURCE_001, there is no database to back up.
        AlreadyExists: CONFLICT_001, ``target`` exists and ``force`` is off.
        ValidationFailed: VALIDATION_001, ``target``'s folder does not exist.
        StateCorrupted: STATE_001, the copy fails its integrity check (the source is damaged).
    """
    if not database.exists():
        raise NotFound(
            f"No project database at {database} to back up. Pass --data-dir (or set INFRA_MCP_DATA_DIR) to the "
            "folder the server uses; `infra-mcp db check` shows which database it finds.",
            details={"path": str(database)},
        )
    if target.exists() and not force:
        raise AlreadyExists(
            f"{target} already exists; choose another name or pass --force to overwrite it.",
            details={"path": str(target)},
        )
    if not target.parent.is_dir():
        raise ValidationFailed(
            f"The folder {target.parent} does not exist. Create it first, or give a PATH in an existing folder.",
            details={"path": str(target)},
        )
    check_database(database, known_version=len(MIGRATIONS))  # a damaged source is named as such, not copied
    with _private_temp(target.parent, f".{target.name}.tmp-") as temp:
        report = _copy_checked(database, temp)
        if force:
            os.replace(temp, target)
        else:
            try:
                os.link(temp, target)  # atomic create-only: a file that appeared meanwhile is not clobbered
            except FileExistsError:
                raise AlreadyExists(
                    f"{target} appeared while the backup was being made; nothing was overwritten. Choose another "
                    "name, or pass --force to overwrite it.",
                    details={"path": str(target)},
                ) from None
        fsync_dir(target.parent)
    return report


def restore_database(database: Path, backup: Path) -> tuple[Path | None, DatabaseReport]:
    """Replace ``database`` with a checked copy of ``backup``; keep the current file aside.

    Returns:
        Where the previous database was kept (None if there was none), and the restored file's report.

    Raises:
        NotFound: RESOURCE_001, no backup file there.
        ValidationFailed: VALIDATION_001, the backup is not an infra-mcp database (or is the database itself).
        StateCorrupted: STATE_001, the backup fails its integrity check.
        StateUnavailable: STATE_004, the backup comes from a newer infra-mcp.
        StateLocked: STATE_003, an infra-mcp server or ``plans`` command has the database open.
    """
    if not backup.is_file():
        raise NotFound(
            f"No backup file at {backup}. Check the path; backups are made with `infra-mcp db backup PATH`.",
            details={"path": str(backup)},
        )
    if database.exists() and backup.samefile(database):
        raise ValidationFailed(
            "The backup is the database itself; nothing was restored. Give the path of a backup file instead.",
            details={"path": str(backup)},
        )
    _require_infra_database(check_database(backup, known_version=len(MIGRATIONS), full=True))
    ensure_private_dir(database.parent)
    with _exclusive_open_lock(database), _private_temp(database.parent, f".{database.name}.restore-") as temp:
        report = _copy_checked(backup, temp)
        _require_infra_database(report)
        aside = _keep_aside(database)
        os.replace(temp, database)  # the one atomic step: readers see the old file or the restored one
        fsync_dir(database.parent)
    return aside, report


def _require_infra_database(report: DatabaseReport) -> None:
    if report.schema_version < 1 or "projects" not in report.counts:
        raise ValidationFailed(
            f"{report.path} is an SQLite file but not an infra-mcp database (no schema); nothing was restored. "
            "Pick a file made by `infra-mcp db backup`.",
            details={"path": str(report.path)},
        )


def _copy_checked(source: Path, temp: Path) -> DatabaseReport:
    """Copy ``source`` into the (empty, 0600) ``temp`` page by page and run the full check on the copy."""
    src = sqlite3.connect(source.resolve().as_uri() + "?mode=rw", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(temp)
        try:
            src.backup(dst)
            # A self-contained file: the live database is in WAL mode, a backup must not need a -wal.
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise ValidationFailed(
            f"Cannot copy {source}: {exc}. Check that the file is readable and the disk has room, then retry.",
            details={"path": str(source)},
        ) from exc
    finally:
        src.close()
    with temp.open("rb+") as handle:
        os.fsync(handle.fileno())
    try:
        report = check_database(temp, known_version=len(MIGRATIONS), full=True)
    except StateCorrupted as exc:
        # The copy is page for page: its damage is the source's. Name the source, not our temporary file.
        raise StateCorrupted(
            f"{source} is damaged: a page-by-page copy of it fails integrity_check. Nothing was written. "
            f"{RESTORE_HINT}",
            details={**exc.details, "path": str(source)},
        ) from None
    return DatabaseReport(path=source, exists=True, schema_version=report.schema_version, counts=report.counts)


def _keep_aside(database: Path) -> Path | None:
    """Move the current database and its journal files to ``*.broken-<timestamp>``; they are never deleted."""
    if not database.exists():
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    aside = database.with_name(f"{database.name}.broken-{stamp}")
    try:
        os.link(database, aside)  # the database itself stays in place until the atomic swap
    except OSError:  # a file system without hard links: a copy keeps the same bytes
        shutil.copy2(database, aside)
    for sidecar in sidecars(database):
        # A stale -wal would be replayed onto the restored file: it must go with the old one.
        with contextlib.suppress(FileNotFoundError):
            os.replace(sidecar, aside.with_name(aside.name + sidecar.name.removeprefix(database.name)))
    return aside


@contextlib.contextmanager
def _exclusive_open_lock(database: Path) -> Iterator[None]:
    """Hold the lock every open store holds shared: no server or ``plans`` command runs meanwhile."""
    fd = os.open(open_lock_path(database), os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateLocked(
                f"{database} is open in a running infra-mcp (a server or a `plans` command). Stop it first "
                "(close the agent host), then restore.",
                details={"path": str(database)},
            ) from None
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _private_temp(folder: Path, prefix: str) -> Iterator[Path]:
    """A new empty ``0600`` file in ``folder``, removed afterwards unless it was renamed away."""
    temp = folder / f"{prefix}{uuid.uuid4().hex[:12]}"
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    try:
        yield temp
    finally:
        for leftover in (temp, *sidecars(temp)):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _counts(report: DatabaseReport) -> str:
    counts = report.counts
    return (
        f"{counts.get('projects', 0)} projects, {counts.get('plans', 0)} plans, {counts.get('audit', 0)} audit events"
    )
