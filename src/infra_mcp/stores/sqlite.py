"""ProjectStore on SQLite (aiosqlite): projects, plans and the audit log.

Rows keep a few indexed columns for queries and the whole model as JSON, so the schema
changes rarely; when it does, a new entry in ``MIGRATIONS`` moves old databases forward
(``PRAGMA user_version`` records how far a database has come).
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import sqlite3
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import aiosqlite
import anyio
import anyio.to_thread
import structlog

from infra_mcp.domain.audit import GENESIS, AuditEvent, duplicate_audit_event
from infra_mcp.domain.common import isoformat
from infra_mcp.domain.drift import DriftReport
from infra_mcp.domain.integrity import AuditChain
from infra_mcp.domain.plan import Plan, PlanStatus, no_such_plan
from infra_mcp.domain.project import Project, no_such_project
from infra_mcp.errors import AlreadyExists, NotFound, PlanStatusInvalid, StateUnavailable
from infra_mcp.file_modes import PRIVATE_FILE, create_private_file, ensure_private_dir, tighten
from infra_mcp.stores.sqlite_integrity import check_database, open_lock_path, sidecars

log = structlog.get_logger(__name__)

_R = TypeVar("_R")
_P = ParamSpec("_P")


def _serialised(
    method: Callable[Concatenate[SqliteProjectStore, _P], Coroutine[Any, Any, _R]],
) -> Callable[Concatenate[SqliteProjectStore, _P], Coroutine[Any, Any, _R]]:
    """Run a writing method under the store's write lock (one transaction at a time)."""

    @functools.wraps(method)
    async def wrapper(store: SqliteProjectStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        async with store._write_lock:
            return await method(store, *args, **kwargs)

    return wrapper


MIGRATIONS: tuple[str, ...] = (
    # 1: projects, members (for "projects I belong to" queries), plans, audit.
    """
    CREATE TABLE projects (
        id          TEXT PRIMARY KEY,
        doc         TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    );
    CREATE TABLE members (
        project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        user        TEXT NOT NULL,
        role        TEXT NOT NULL,
        PRIMARY KEY (project_id, user)
    );
    CREATE INDEX members_by_user ON members(user);
    CREATE TABLE plans (
        id          TEXT PRIMARY KEY,
        project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        status      TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        doc         TEXT NOT NULL
    );
    CREATE INDEX plans_by_project ON plans(project_id, created_at);
    CREATE TABLE audit (
        id          TEXT PRIMARY KEY,
        project_id  TEXT NOT NULL,
        at          TEXT NOT NULL,
        doc         TEXT NOT NULL
    );
    CREATE INDEX audit_by_project ON audit(project_id, at);
    """,
    # 2: project incarnations (DESIGN §3). Each existing project gets its own random UUID (the
    # subquery names the row, so SQLite draws one per project instead of caching one for all) and
    # adopts the state and audit written without an incarnation. The projects in this database at
    # upgrade time are the only ones that can have written them: a project deleted earlier took its
    # state with it, or (if some was left) nothing here can say whose it was, and the one that
    # exists now is the best owner. Projects created after the upgrade never adopt unmarked data.
    """
    UPDATE projects SET doc = json_set(
        doc,
        '$.incarnation',
        (SELECT lower(substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-'
                      || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(h, 18, 3) || '-' || substr(h, 21))
           FROM (SELECT hex(randomblob(16)) AS h) WHERE projects.id IS NOT NULL),
        '$.adopts_unmarked_state',
        json('true')
    ) WHERE json_extract(doc, '$.incarnation') IS NULL;
    """,
    # 3: the audit chain reads a project's newest entry by insertion order on every append.
    """
    CREATE INDEX audit_chain ON audit(project_id);
    """,
    # 4: each project's last drift result (detect_drift), replaced by the next; gone with its project.
    """
    CREATE TABLE drift_reports (
        project_id  TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
        checked_at  TEXT NOT NULL,
        doc         TEXT NOT NULL
    );
    """,
)


class SqliteProjectStore:
    """The ProjectStore port on one SQLite file. Use ``await store.open()`` / ``await store.close()``."""

    def __init__(self, path: Path, *, chain: AuditChain | None = None) -> None:
        self.path = path
        # Without a chain (tools that only read), entries are still written, unlinked.
        self.chain = chain
        self._db: aiosqlite.Connection | None = None
        # One connection is shared by every task of the server; writes are serialised so two
        # tasks never interleave statements inside one transaction.
        self._write_lock = anyio.Lock()
        self._open_lock: int | None = None

    async def open(self) -> SqliteProjectStore:
        """Check the file is safe to start on, then open (creating folders and the file if needed) and migrate.

        The data dir is made ``0700`` and the database files ``0600`` (tightened, with a warning, if
        looser). While open, the store holds a shared lock: ``infra-mcp db restore`` refuses to run meanwhile.

        Raises:
            StateCorrupted: STATE_001 if the file is empty where the data dir shows prior use,
                truncated, not a database, or fails its integrity check (the message says how to restore).
            StateUnavailable: STATE_004 if the file cannot be opened, is from a newer infra-mcp,
                or a restore is under way.
        """
        db: aiosqlite.Connection | None = None
        try:
            await anyio.to_thread.run_sync(self._prepare_files)
            db = await aiosqlite.connect(self.path, timeout=30)
            db.row_factory = aiosqlite.Row
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA foreign_keys=ON")
            await db.execute("PRAGMA busy_timeout=30000")
            await self._migrate(db)
            # SQLite gives the -wal/-shm it just made the main file's mode; this catches older leftovers.
            for sidecar in sidecars(self.path):
                tighten(sidecar, PRIVATE_FILE)
        except BaseException as exc:
            if db is not None:
                await db.close()  # its worker thread would otherwise keep the process alive
            self._release_open_lock()
            if isinstance(exc, (sqlite3.Error, OSError)):
                raise StateUnavailable(
                    f"Cannot open the project database at {self.path}: {exc}. Check INFRA_MCP_DATA_DIR "
                    "points to a writable folder and the file is an infra-mcp database.",
                    details={"path": str(self.path)},
                ) from exc
            raise
        self._db = db
        return self

    def _prepare_files(self) -> None:
        """Private data dir, shared open lock, integrity check, then a ``0600`` file (in a worker thread)."""
        ensure_private_dir(self.path.parent)
        self._take_open_lock()
        for existing in (self.path, *sidecars(self.path)):
            tighten(existing, PRIVATE_FILE)  # even a damaged file holds everyone's plans: keep it private
        check_database(self.path, known_version=len(MIGRATIONS))
        create_private_file(self.path)

    def _take_open_lock(self) -> None:
        fd = os.open(open_lock_path(self.path), os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateUnavailable(
                f"The project database {self.path} is being restored (`infra-mcp db restore`). Retry when it is done.",
                details={"path": str(self.path), "problem": "restore_in_progress"},
            ) from None
        self._open_lock = fd

    def _release_open_lock(self) -> None:
        if self._open_lock is not None:
            os.close(self._open_lock)  # closing the descriptor drops the flock
            self._open_lock = None

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None
        self._release_open_lock()

    async def __aenter__(self) -> SqliteProjectStore:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @staticmethod
    async def _migrate(db: aiosqlite.Connection) -> None:
        async with db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        current = int(row[0]) if row else 0
        if current > len(MIGRATIONS):
            raise sqlite3.DatabaseError(
                f"database schema version {current} is newer than this infra-mcp knows ({len(MIGRATIONS)}); "
                "upgrade infra-mcp"
            )
        for version in range(current, len(MIGRATIONS)):
            # executescript commits first; each migration then runs in its own transaction.
            await db.executescript(f"BEGIN;\n{MIGRATIONS[version]}\nPRAGMA user_version = {version + 1};\nCOMMIT;")
            log.info("database_migrated", to_version=version + 1)

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("SqliteProjectStore used before open()")
        return self._db

    @property
    def schema_version(self) -> int:
        return len(MIGRATIONS)

    # Projects ---------------------------------------------------------------

    @_serialised
    async def create_project(self, project: Project) -> Project:
        try:
            await self.db.execute("BEGIN IMMEDIATE")
            await self.db.execute(
                "INSERT INTO projects (id, doc, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (project.id, project.model_dump_json(), isoformat(project.created_at), isoformat(project.updated_at)),
            )
            await self._write_members(project)
            await self.db.commit()
        except sqlite3.IntegrityError:
            await self.db.rollback()
            raise AlreadyExists(
                f"A project with id {project.id!r} already exists. Choose another id, or use get_project to see it.",
                details={"project_id": project.id},
            ) from None
        except BaseException:
            await self.db.rollback()
            raise
        return project

    async def _write_members(self, project: Project) -> None:
        await self.db.execute("DELETE FROM members WHERE project_id = ?", (project.id,))
        await self.db.executemany(
            "INSERT INTO members (project_id, user, role) VALUES (?, ?, ?)",
            [(project.id, m.user, m.role.value) for m in project.members],
        )

    async def get_project(self, project_id: str) -> Project:
        async with self.db.execute("SELECT doc FROM projects WHERE id = ?", (project_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise no_such_project(project_id)
        return Project.model_validate_json(row["doc"])

    async def list_projects(self, member: str | None = None) -> list[Project]:
        args: tuple[str, ...] = ()
        if member is None:
            query = "SELECT doc FROM projects ORDER BY id"
        else:
            query = "SELECT p.doc FROM projects p JOIN members m ON m.project_id = p.id WHERE m.user = ? ORDER BY p.id"
            args = (member,)
        async with self.db.execute(query, args) as cursor:
            rows = await cursor.fetchall()
        return [Project.model_validate_json(r["doc"]) for r in rows]

    @_serialised
    async def update_project(self, project: Project, *, expected_updated_at: datetime) -> Project:
        try:
            await self.db.execute("BEGIN IMMEDIATE")
            cursor = await self.db.execute(
                "UPDATE projects SET doc = ?, updated_at = ? WHERE id = ? AND updated_at = ?",
                (project.model_dump_json(), isoformat(project.updated_at), project.id, isoformat(expected_updated_at)),
            )
            if cursor.rowcount != 1:
                await self.db.rollback()
                await self.get_project(project.id)  # NotFound if it is gone
                raise AlreadyExists(
                    f"Project {project.id!r} was changed by someone else meanwhile. Read it again and retry.",
                    details={"project_id": project.id},
                )
            await self._write_members(project)
            await self.db.commit()
        except BaseException:
            if self.db.in_transaction:
                await self.db.rollback()
            raise
        return project

    @_serialised
    async def delete_project(self, project_id: str) -> None:
        cursor = await self.db.execute("DELETE FROM projects WHERE id = ?", (project_id,))
        await self.db.commit()
        if cursor.rowcount != 1:
            raise no_such_project(project_id)

    # Plans ------------------------------------------------------------------

    @_serialised
    async def save_plan(self, plan: Plan, *, audit: AuditEvent | None = None) -> Plan:
        """Insert ``plan`` and, in the same transaction, its ``audit`` line (both or neither)."""
        try:
            await self.db.execute("BEGIN IMMEDIATE")
            await self.db.execute(
                "INSERT INTO plans (id, project_id, status, created_at, doc) VALUES (?, ?, ?, ?, ?)",
                (plan.id, plan.project_id, plan.status.value, isoformat(plan.created_at), plan.model_dump_json()),
            )
            if audit is not None:
                await self._insert_audit(audit)
            await self.db.commit()
        except sqlite3.IntegrityError as exc:
            await self.db.rollback()
            if "FOREIGN KEY" in str(exc):
                raise no_such_project(plan.project_id) from None
            raise AlreadyExists(
                f"Plan {plan.id!r} already exists. Make the plan again: a new plan gets a new id.",
                details={"plan_id": plan.id},
            ) from None
        except BaseException:
            if self.db.in_transaction:
                await self.db.rollback()
            raise
        return plan

    async def get_plan(self, plan_id: str) -> Plan:
        async with self.db.execute("SELECT doc FROM plans WHERE id = ?", (plan_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise no_such_plan(plan_id)
        return Plan.model_validate_json(row["doc"])

    async def list_plans(
        self, project_id: str, *, statuses: Sequence[PlanStatus] | None = None, limit: int = 50
    ) -> list[Plan]:
        query = "SELECT doc FROM plans WHERE project_id = ?"
        args: list[Any] = [project_id]
        if statuses:
            query += f" AND status IN ({','.join('?' * len(statuses))})"
            args.extend(s.value for s in statuses)
        query += " ORDER BY created_at DESC, id DESC LIMIT ?"
        args.append(limit)
        async with self.db.execute(query, args) as cursor:
            rows = await cursor.fetchall()
        return [Plan.model_validate_json(r["doc"]) for r in rows]

    @_serialised
    async def update_plan(self, plan: Plan, *, expected_status: PlanStatus, audit: AuditEvent | None = None) -> Plan:
        """Compare-and-set the plan's row and, in the same transaction, append its ``audit`` line.

        A status change and the audit line that tells of it are one unit of work: a crash between
        the two can no longer leave an approval (or an execution) nobody recorded.
        """
        try:
            await self.db.execute("BEGIN IMMEDIATE")
            cursor = await self.db.execute(
                "UPDATE plans SET doc = ?, status = ? WHERE id = ? AND status = ?",
                (plan.model_dump_json(), plan.status.value, plan.id, expected_status.value),
            )
            moved = cursor.rowcount == 1
            if moved and audit is not None:
                await self._insert_audit(audit)
            if moved:
                await self.db.commit()
            else:
                await self.db.rollback()
        except BaseException:
            if self.db.in_transaction:
                await self.db.rollback()
            raise
        if not moved:
            current = await self.get_plan(plan.id)
            raise PlanStatusInvalid(
                f"Plan {plan.id} is now {current.status.value}, not {expected_status.value}: someone else acted on "
                "it first. Read it again with get_plan.",
                details={"plan_id": plan.id, "status": current.status.value, "expected": expected_status.value},
            )
        return plan

    # Audit ------------------------------------------------------------------

    async def _with_incarnation(self, event: AuditEvent) -> AuditEvent:
        """``event`` stamped with its project's incarnation when the caller did not know it."""
        if event.incarnation is not None:
            return event
        async with self.db.execute(
            "SELECT json_extract(doc, '$.incarnation') FROM projects WHERE id = ?", (event.project_id,)
        ) as cursor:
            row = await cursor.fetchone()
        return event if row is None or row[0] is None else event.model_copy(update={"incarnation": row[0]})

    @_serialised
    async def append_audit(self, event: AuditEvent) -> None:
        """Append ``event`` on its own (see :meth:`_insert_audit`)."""
        try:
            await self.db.execute("BEGIN IMMEDIATE")
            await self._insert_audit(event)
            await self.db.commit()
        except BaseException:
            if self.db.in_transaction:
                await self.db.rollback()
            raise

    async def _insert_audit(self, event: AuditEvent) -> None:
        """Insert ``event`` inside the caller's transaction: stamped with its project's incarnation (if
        the caller did not know it) and linked to the project's previous entry.

        Stamping comes first: the link covers the incarnation too.
        """
        event = await self._with_incarnation(event)
        if self.chain is not None:
            async with self.db.execute(
                "SELECT doc FROM audit WHERE project_id = ? ORDER BY rowid DESC LIMIT 1", (event.project_id,)
            ) as cursor:
                row = await cursor.fetchone()
            previous = str(json.loads(row["doc"]).get("hash") or GENESIS) if row else GENESIS
            event = event.model_copy(update={"prev_hash": previous, "hash": ""})
            event = event.model_copy(update={"hash": self.chain.link(previous, event.model_dump(mode="json"))})
        try:
            await self.db.execute(
                "INSERT INTO audit (id, project_id, at, doc) VALUES (?, ?, ?, ?)",
                (event.id, event.project_id, isoformat(event.at), event.model_dump_json()),
            )
        except sqlite3.IntegrityError:
            raise duplicate_audit_event(event.id) from None

    # Drift results ------------------------------------------------------------

    @_serialised
    async def save_drift_report(self, report: DriftReport) -> None:
        """Keep ``report`` as its project's last drift result (the one before is replaced)."""
        try:
            await self.db.execute(
                "INSERT INTO drift_reports (project_id, checked_at, doc) VALUES (?, ?, ?) "
                "ON CONFLICT(project_id) DO UPDATE SET checked_at = excluded.checked_at, doc = excluded.doc",
                (report.project_id, isoformat(report.checked_at), report.model_dump_json()),
            )
            await self.db.commit()
        except sqlite3.IntegrityError:
            await self.db.rollback()
            raise no_such_project(report.project_id) from None

    async def get_drift_report(self, project_id: str) -> DriftReport | None:
        async with self.db.execute("SELECT doc FROM drift_reports WHERE project_id = ?", (project_id,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else DriftReport.model_validate_json(row["doc"])

    async def audit_trail(self, project_id: str) -> list[AuditEvent]:
        async with self.db.execute(
            "SELECT doc FROM audit WHERE project_id = ? ORDER BY rowid", (project_id,)
        ) as cursor:
            rows = await cursor.fetchall()
        return [AuditEvent.model_validate_json(r["doc"]) for r in rows]

    async def list_audit(
        self,
        project_id: str,
        *,
        incarnation: str | None = None,
        unmarked_since: datetime | None = None,
        limit: int = 200,
        before: str | None = None,
    ) -> list[AuditEvent]:
        query = "SELECT doc FROM audit WHERE project_id = ?"
        args: list[Any] = [project_id]
        if incarnation is not None:
            # A re-created project id must not show the previous owner's events.
            query += " AND (json_extract(doc, '$.incarnation') = ?"
            args.append(incarnation)
            if unmarked_since is not None:
                query += " OR (json_extract(doc, '$.incarnation') IS NULL AND at >= ?)"
                args.append(isoformat(unmarked_since))
            query += ")"
        if before is not None:
            async with self.db.execute(
                "SELECT rowid FROM audit WHERE id = ? AND project_id = ?", (before, project_id)
            ) as cursor:
                anchor = await cursor.fetchone()
            if anchor is None:
                raise NotFound(
                    f"No audit event {before!r} in project {project_id!r}. Start again from the first page.",
                    details={"project_id": project_id, "before": before},
                )
            query += " AND rowid < ?"
            args.append(anchor[0])
        # Insertion order: the order of the chain, stable for paging whatever the clocks said.
        query += " ORDER BY rowid DESC LIMIT ?"
        args.append(limit)
        async with self.db.execute(query, args) as cursor:
            rows = await cursor.fetchall()
        return [AuditEvent.model_validate(json.loads(r["doc"])) for r in rows]
