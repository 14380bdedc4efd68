"""ProjectStore on PostgreSQL (asyncpg): one database shared by several infra-mcp replicas.

The same port as :mod:`infra_mcp.stores.sqlite`, with what a shared database adds:

- **Versioned migrations.** ``MIGRATIONS[i]`` takes a database to version ``i + 1``; the versions
  applied are rows of ``infra_mcp_migrations``. Replicas starting together migrate one at a time
  (a transaction-scoped advisory lock); a database migrated by a newer infra-mcp is refused.
- **Status transitions are conditional updates in a transaction.** ``UPDATE plans ... WHERE id = $1
  AND status = $2``: under READ COMMITTED a second writer waits for the first one's row lock and then
  re-checks the condition against the committed row, so of two replicas approving, executing or
  superseding one plan exactly one moves it; the other updates nothing and gets ``PLAN_003``. The
  audit line of a change is inserted in the same transaction (both or neither).
- **One audit chain per project, whatever the number of writers.** Appending takes a
  transaction-scoped advisory lock on the project before it reads the newest entry, so two replicas
  never link two entries to the same predecessor; entries are ordered by an identity column assigned
  under that lock, which is therefore the chain's order.

Rows keep the whole model as JSON text (not ``jsonb``, which would reorder keys and reformat numbers
of what the audit chain hashed), plus the indexed columns queries need.
"""

from __future__ import annotations

import contextlib
import functools
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio
import asyncpg
import structlog

from infra_mcp.domain.audit import GENESIS, AuditEvent, duplicate_audit_event
from infra_mcp.domain.drift import DriftReport
from infra_mcp.domain.integrity import AuditChain
from infra_mcp.domain.plan import Plan, PlanStatus, no_such_plan
from infra_mcp.domain.project import Project, no_such_project
from infra_mcp.errors import AlreadyExists, InfraError, NotFound, PlanStatusInvalid, StateUnavailable

log = structlog.get_logger(__name__)

# What a pooled connection is (a proxy of asyncpg.Connection, with the same methods).
if TYPE_CHECKING:
    _Connection = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
_R = TypeVar("_R")
_P = ParamSpec("_P")

# Advisory lock keys (first half of the two-int form); the second half hashes what is locked.
_MIGRATION_LOCK = 0x1F_A0_01
_AUDIT_LOCK = 0x1F_A0_02

MIGRATIONS: tuple[str, ...] = (
    # 1: projects, members (for "projects I belong to"), plans, and the audit log in chain order.
    """
    CREATE TABLE projects (
        id          text PRIMARY KEY,
        doc         text NOT NULL,
        incarnation text,
        created_at  timestamptz NOT NULL,
        updated_at  timestamptz NOT NULL
    );
    CREATE TABLE members (
        project_id  text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        user_name   text NOT NULL,
        role        text NOT NULL,
        PRIMARY KEY (project_id, user_name)
    );
    CREATE INDEX members_by_user ON members(user_name);
    CREATE TABLE plans (
        id          text PRIMARY KEY,
        project_id  text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        status      text NOT NULL,
        created_at  timestamptz NOT NULL,
        doc         text NOT NULL
    );
    CREATE INDEX plans_by_project ON plans(project_id, created_at);
    CREATE TABLE audit (
        seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id          text NOT NULL UNIQUE,
        project_id  text NOT NULL,
        incarnation text,
        at          timestamptz NOT NULL,
        hash        text NOT NULL,
        doc         text NOT NULL
    );
    CREATE INDEX audit_by_project ON audit(project_id, seq);
    """,
    # 2: each project's last drift result (detect_drift), replaced by the next; gone with its project.
    """
    CREATE TABLE drift_reports (
        project_id  text PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
        checked_at  timestamptz NOT NULL,
        doc         text NOT NULL
    );
    """,
)

# Replicas tell each other that a project's plans waiting for a person changed (LISTEN/NOTIFY).
PENDING_CHANNEL = "infra_mcp_pending"

_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS infra_mcp_migrations (
    version     integer PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""

# Errors that mean "the database cannot be reached or used right now", as opposed to a bug.
# InternalClientError is what asyncpg raises for a pooled connection whose server session was just
# ended (a restart, a failover, pg_terminate_backend) before it noticed; the pool replaces it after.
_UNAVAILABLE = (
    OSError,
    ConnectionError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
)


def redact_url(url: str) -> str:
    """``url`` without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")  # the port is kept as written, even if malformed
    name = user.split(":", 1)[0]
    return urlunsplit((parts.scheme, f"{name}:***@{host}", parts.path, parts.query, parts.fragment))


def _at(moment: datetime) -> datetime:
    """An aware UTC datetime (the models' datetimes are aware; a naive one is taken as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _guarded(
    method: Callable[Concatenate[PostgresProjectStore, _P], Coroutine[Any, Any, _R]],
) -> Callable[Concatenate[PostgresProjectStore, _P], Coroutine[Any, Any, _R]]:
    """Turn "the database is unreachable" into ``STATE_004`` naming the (redacted) database."""

    @functools.wraps(method)
    async def wrapper(store: PostgresProjectStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await method(store, *args, **kwargs)
        except InfraError:
            raise
        except _UNAVAILABLE as exc:
            raise store.unavailable(exc) from exc

    return wrapper


def _read(
    method: Callable[Concatenate[PostgresProjectStore, _P], Coroutine[Any, Any, _R]],
) -> Callable[Concatenate[PostgresProjectStore, _P], Coroutine[Any, Any, _R]]:
    """Like :func:`_guarded`, for a read: tried once more on a fresh connection first, since reading
    twice is harmless and a pool learns of a dead connection only by using it. Writes are not retried:
    whether a commit cut off mid-way took effect is unknown, and the caller decides (STATE_004)."""

    @functools.wraps(method)
    async def wrapper(store: PostgresProjectStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await method(store, *args, **kwargs)
        except InfraError:
            raise
        except _UNAVAILABLE as exc:
            log.warning("project_database_retrying_read", database=store.where, error=type(exc).__name__)
        try:
            return await method(store, *args, **kwargs)
        except InfraError:
            raise
        except _UNAVAILABLE as exc:
            raise store.unavailable(exc) from exc

    return wrapper


class PostgresProjectStore:
    """The ProjectStore port on a PostgreSQL database. Use ``await store.open()`` / ``await store.close()``.

    Args:
        url: ``postgresql://user:password@host:port/database``; query parameters asyncpg does not
            know become session settings (``?search_path=infra`` keeps the tables in schema ``infra``).
        chain: Links audit entries (without it, tools that only read still write unlinked entries).
        pool_size: Connections this process keeps at most.
    """

    def __init__(self, url: str, *, chain: AuditChain | None = None, pool_size: int = 10) -> None:
        self.url = url
        self.chain = chain
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        # Names this process's announcements, so it does not act on its own.
        self.origin = uuid.uuid4().hex
        self.relisten_seconds = 3.0

    @property
    def where(self) -> str:
        return redact_url(self.url)

    def unavailable(self, exc: BaseException) -> StateUnavailable:
        return StateUnavailable(
            f"The project database {self.where} cannot be reached: {type(exc).__name__}: {exc}. Check that "
            "PostgreSQL is running and INFRA_MCP_DATABASE_URL (host, port, user, database) is right, then retry.",
            details={"database": self.where},
        )

    async def open(self) -> PostgresProjectStore:
        """Connect, then migrate the schema to this version (one replica at a time).

        Raises:
            StateUnavailable: STATE_004 if the database cannot be reached, or was migrated by a newer infra-mcp.
        """
        try:
            pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=self.pool_size, command_timeout=60, timeout=10
            )
        except (*_UNAVAILABLE, asyncpg.PostgresError) as exc:
            raise self.unavailable(exc) from exc
        try:
            async with pool.acquire() as connection:
                await self._migrate(connection)
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, _UNAVAILABLE):
                raise self.unavailable(exc) from exc
            raise
        self._pool = pool
        log.info("project_database_opened", backend="postgresql", database=self.where)
        return self

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def __aenter__(self) -> PostgresProjectStore:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("PostgresProjectStore used before open()")
        return self._pool

    @property
    def schema_version(self) -> int:
        return len(MIGRATIONS)

    async def _migrate(self, connection: _Connection) -> None:
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1, 0)", _MIGRATION_LOCK)
            await connection.execute(_MIGRATIONS_TABLE)
            current = int(await connection.fetchval("SELECT coalesce(max(version), 0) FROM infra_mcp_migrations"))
            if current > len(MIGRATIONS):
                raise StateUnavailable(
                    f"The project database {self.where} is at schema version {current}, newer than this infra-mcp "
                    f"knows ({len(MIGRATIONS)}): it was migrated by a newer release. Upgrade infra-mcp.",
                    details={"database": self.where, "schema_version": current, "known_version": len(MIGRATIONS)},
                )
            for version in range(current, len(MIGRATIONS)):
                await connection.execute(MIGRATIONS[version])
                await connection.execute("INSERT INTO infra_mcp_migrations (version) VALUES ($1)", version + 1)
                log.info("database_migrated", backend="postgresql", to_version=version + 1)

    async def inspect(self) -> tuple[int, dict[str, int]]:
        """Without changing anything: the schema version recorded (0 for a database infra-mcp never
        started on) and rows per table, for ``infra-mcp db check``.

        Raises:
            StateUnavailable: STATE_004, the database cannot be reached, or is newer than this infra-mcp.
        """
        try:
            connection = await asyncpg.connect(self.url, timeout=10)
        except (*_UNAVAILABLE, asyncpg.PostgresError) as exc:
            raise self.unavailable(exc) from exc
        try:
            if await connection.fetchval("SELECT to_regclass('infra_mcp_migrations')") is None:
                return 0, {}
            version = int(await connection.fetchval("SELECT coalesce(max(version), 0) FROM infra_mcp_migrations"))
            if version > len(MIGRATIONS):
                raise StateUnavailable(
                    f"The project database {self.where} is at schema version {version}, newer than this infra-mcp "
                    f"knows ({len(MIGRATIONS)}). Upgrade infra-mcp.",
                    details={"database": self.where, "schema_version": version, "known_version": len(MIGRATIONS)},
                )
            counts = {}
            for table in ("projects", "members", "plans", "audit"):
                # The table names are this module's constants, never input.
                counts[table] = int(await connection.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608
            return version, counts
        except _UNAVAILABLE as exc:
            raise self.unavailable(exc) from exc
        finally:
            await connection.close()

    async def applied_version(self) -> int:
        """The newest migration recorded in the database (for ``infra-mcp db check``)."""
        return int(await self.pool.fetchval("SELECT coalesce(max(version), 0) FROM infra_mcp_migrations"))

    # Projects ---------------------------------------------------------------

    @_guarded
    async def create_project(self, project: Project) -> Project:
        async with self.pool.acquire() as connection, connection.transaction():
            try:
                await connection.execute(
                    "INSERT INTO projects (id, doc, incarnation, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)",
                    project.id,
                    project.model_dump_json(),
                    project.incarnation,
                    _at(project.created_at),
                    _at(project.updated_at),
                )
            except asyncpg.UniqueViolationError:
                raise AlreadyExists(
                    f"A project with id {project.id!r} already exists. Choose another id, or use get_project to see it.",
                    details={"project_id": project.id},
                ) from None
            await self._write_members(connection, project)
        return project

    @staticmethod
    async def _write_members(connection: _Connection, project: Project) -> None:
        await connection.execute("DELETE FROM members WHERE project_id = $1", project.id)
        await connection.executemany(
            "INSERT INTO members (project_id, user_name, role) VALUES ($1, $2, $3)",
            [(project.id, m.user, m.role.value) for m in project.members],
        )

    @_read
    async def get_project(self, project_id: str) -> Project:
        doc = await self.pool.fetchval("SELECT doc FROM projects WHERE id = $1", project_id)
        if doc is None:
            raise no_such_project(project_id)
        return Project.model_validate_json(doc)

    @_read
    async def list_projects(self, member: str | None = None) -> list[Project]:
        if member is None:
            rows = await self.pool.fetch("SELECT doc FROM projects ORDER BY id")
        else:
            rows = await self.pool.fetch(
                "SELECT p.doc FROM projects p JOIN members m ON m.project_id = p.id WHERE m.user_name = $1 "
                "ORDER BY p.id",
                member,
            )
        return [Project.model_validate_json(r["doc"]) for r in rows]

    @_guarded
    async def update_project(self, project: Project, *, expected_updated_at: datetime) -> Project:
        async with self.pool.acquire() as connection, connection.transaction():
            status = await connection.execute(
                "UPDATE projects SET doc = $1, incarnation = $2, updated_at = $3 WHERE id = $4 AND updated_at = $5",
                project.model_dump_json(),
                project.incarnation,
                _at(project.updated_at),
                project.id,
                _at(expected_updated_at),
            )
            if status != "UPDATE 1":
                exists = await connection.fetchval("SELECT 1 FROM projects WHERE id = $1", project.id)
                if exists is None:
                    raise no_such_project(project.id)
                raise AlreadyExists(
                    f"Project {project.id!r} was changed by someone else meanwhile. Read it again and retry.",
                    details={"project_id": project.id},
                )
            await self._write_members(connection, project)
        return project

    @_guarded
    async def delete_project(self, project_id: str) -> None:
        status = await self.pool.execute("DELETE FROM projects WHERE id = $1", project_id)
        if status != "DELETE 1":
            raise no_such_project(project_id)

    # Plans ------------------------------------------------------------------

    @_guarded
    async def save_plan(self, plan: Plan, *, audit: AuditEvent | None = None) -> Plan:
        """Insert ``plan`` and, in the same transaction, its ``audit`` line (both or neither)."""
        async with self.pool.acquire() as connection, connection.transaction():
            if audit is not None:
                await self._lock_chain(connection, audit.project_id)
            try:
                await connection.execute(
                    "INSERT INTO plans (id, project_id, status, created_at, doc) VALUES ($1, $2, $3, $4, $5)",
                    plan.id,
                    plan.project_id,
                    plan.status.value,
                    _at(plan.created_at),
                    plan.model_dump_json(),
                )
            except asyncpg.ForeignKeyViolationError:
                raise no_such_project(plan.project_id) from None
            except asyncpg.UniqueViolationError:
                raise AlreadyExists(
                    f"Plan {plan.id!r} already exists. Make the plan again: a new plan gets a new id.",
                    details={"plan_id": plan.id},
                ) from None
            if audit is not None:
                await self._insert_audit(connection, audit)
        return plan

    @_read
    async def get_plan(self, plan_id: str) -> Plan:
        doc = await self.pool.fetchval("SELECT doc FROM plans WHERE id = $1", plan_id)
        if doc is None:
            raise no_such_plan(plan_id)
        return Plan.model_validate_json(doc)

    @_read
    async def list_plans(
        self, project_id: str, *, statuses: Sequence[PlanStatus] | None = None, limit: int = 50
    ) -> list[Plan]:
        if statuses:
            rows = await self.pool.fetch(
                "SELECT doc FROM plans WHERE project_id = $1 AND status = ANY($2::text[]) "
                "ORDER BY created_at DESC, id DESC LIMIT $3",
                project_id,
                [s.value for s in statuses],
                limit,
            )
        else:
            rows = await self.pool.fetch(
                "SELECT doc FROM plans WHERE project_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
                project_id,
                limit,
            )
        return [Plan.model_validate_json(r["doc"]) for r in rows]

    @_guarded
    async def update_plan(self, plan: Plan, *, expected_status: PlanStatus, audit: AuditEvent | None = None) -> Plan:
        """Compare-and-set the plan's row and, in the same transaction, append its ``audit`` line.

        Raises:
            PlanStatusInvalid: PLAN_003, another actor (maybe on another replica) moved it first.
            NotFound: RESOURCE_001, the plan is gone.
        """
        async with self.pool.acquire() as connection, connection.transaction():
            if audit is not None:
                # Chain lock first, row lock second, in every transaction: no two can wait on each other.
                await self._lock_chain(connection, audit.project_id)
            status = await connection.execute(
                "UPDATE plans SET doc = $1, status = $2 WHERE id = $3 AND status = $4",
                plan.model_dump_json(),
                plan.status.value,
                plan.id,
                expected_status.value,
            )
            moved = status == "UPDATE 1"
            if moved and audit is not None:
                await self._insert_audit(connection, audit)
            current = None if moved else await connection.fetchval("SELECT status FROM plans WHERE id = $1", plan.id)
        if moved:
            return plan
        if current is None:
            raise no_such_plan(plan.id)
        raise PlanStatusInvalid(
            f"Plan {plan.id} is now {current}, not {expected_status.value}: someone else acted on it first. "
            "Read it again with get_plan.",
            details={"plan_id": plan.id, "status": current, "expected": expected_status.value},
        )

    # Audit ------------------------------------------------------------------

    @staticmethod
    async def _lock_chain(connection: _Connection, project_id: str) -> None:
        """Hold the project's audit chain until the transaction ends (the schema is part of the key,
        so two schemas in one database never wait on each other for the same project id)."""
        await connection.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext(current_schema() || '/' || $2))", _AUDIT_LOCK, project_id
        )

    # Drift results ------------------------------------------------------------

    @_guarded
    async def save_drift_report(self, report: DriftReport) -> None:
        """Keep ``report`` as its project's last drift result (the one before is replaced)."""
        try:
            await self.pool.execute(
                "INSERT INTO drift_reports (project_id, checked_at, doc) VALUES ($1, $2, $3) "
                "ON CONFLICT (project_id) DO UPDATE SET checked_at = excluded.checked_at, doc = excluded.doc",
                report.project_id,
                _at(report.checked_at),
                report.model_dump_json(),
            )
        except asyncpg.ForeignKeyViolationError:
            raise no_such_project(report.project_id) from None

    @_read
    async def get_drift_report(self, project_id: str) -> DriftReport | None:
        doc = await self.pool.fetchval("SELECT doc FROM drift_reports WHERE project_id = $1", project_id)
        return None if doc is None else DriftReport.model_validate_json(doc)

    @_guarded
    async def append_audit(self, event: AuditEvent) -> None:
        async with self.pool.acquire() as connection, connection.transaction():
            await self._lock_chain(connection, event.project_id)
            await self._insert_audit(connection, event)

    async def _insert_audit(self, connection: _Connection, event: AuditEvent) -> None:
        """Insert ``event`` in the caller's transaction, which holds the project's chain lock: stamped
        with its project's incarnation (if the caller did not know it), then linked to the newest entry."""
        if event.incarnation is None:
            incarnation = await connection.fetchval("SELECT incarnation FROM projects WHERE id = $1", event.project_id)
            if incarnation is not None:
                event = event.model_copy(update={"incarnation": incarnation})
        if self.chain is not None:
            previous = await connection.fetchval(
                "SELECT hash FROM audit WHERE project_id = $1 ORDER BY seq DESC LIMIT 1", event.project_id
            )
            previous = previous or GENESIS
            event = event.model_copy(update={"prev_hash": previous, "hash": ""})
            event = event.model_copy(update={"hash": self.chain.link(previous, event.model_dump(mode="json"))})
        try:
            await connection.execute(
                "INSERT INTO audit (id, project_id, incarnation, at, hash, doc) VALUES ($1, $2, $3, $4, $5, $6)",
                event.id,
                event.project_id,
                event.incarnation,
                _at(event.at),
                event.hash,
                event.model_dump_json(),
            )
        except asyncpg.UniqueViolationError:
            raise duplicate_audit_event(event.id) from None

    @_read
    async def audit_trail(self, project_id: str) -> list[AuditEvent]:
        rows = await self.pool.fetch("SELECT doc FROM audit WHERE project_id = $1 ORDER BY seq", project_id)
        return [AuditEvent.model_validate_json(r["doc"]) for r in rows]

    @_read
    async def list_audit(
        self,
        project_id: str,
        *,
        incarnation: str | None = None,
        unmarked_since: datetime | None = None,
        limit: int = 200,
        before: str | None = None,
    ) -> list[AuditEvent]:
        query = "SELECT doc FROM audit WHERE project_id = $1"
        args: list[Any] = [project_id]
        if incarnation is not None:
            # A re-created project id must not show the previous owner's events.
            args.append(incarnation)
            query += f" AND (incarnation = ${len(args)}"
            if unmarked_since is not None:
                args.append(_at(unmarked_since))
                query += f" OR (incarnation IS NULL AND at >= ${len(args)})"
            query += ")"
        if before is not None:
            anchor = await self.pool.fetchval(
                "SELECT seq FROM audit WHERE id = $1 AND project_id = $2", before, project_id
            )
            if anchor is None:
                raise NotFound(
                    f"No audit event {before!r} in project {project_id!r}. Start again from the first page.",
                    details={"project_id": project_id, "before": before},
                )
            args.append(anchor)
            query += f" AND seq < ${len(args)}"
        # Chain order: stable for paging whatever the replicas' clocks said.
        args.append(limit)
        query += f" ORDER BY seq DESC LIMIT ${len(args)}"
        rows = await self.pool.fetch(query, *args)
        return [AuditEvent.model_validate(json.loads(r["doc"])) for r in rows]

    # Between replicas -------------------------------------------------------

    async def announce(self, project_id: str) -> None:
        """Tell the other replicas on this database (and schema) that ``project_id``'s pending plans changed.

        Raises:
            StateUnavailable: STATE_004, the database cannot be reached.
        """
        try:
            await self.pool.execute(
                "SELECT pg_notify($1, json_build_object('schema', current_schema(), 'origin', $2::text, "
                "'project_id', $3::text)::text)",
                PENDING_CHANNEL,
                self.origin,
                project_id,
            )
        except _UNAVAILABLE as exc:
            raise self.unavailable(exc) from exc

    @asynccontextmanager
    async def listening(self, heard: Callable[[str], Awaitable[None]]) -> AsyncIterator[None]:
        """While open, call ``heard(project_id)`` for each announcement of another replica on this schema.

        A connection of its own listens. When it is lost (a database restart, a failover) the replica
        says so in its log and listens again as soon as the database answers (every few seconds);
        announcements made in between are missed, and those clients see the change when they next read.

        Raises:
            StateUnavailable: STATE_004, the database cannot be reached to start listening.
        """
        first = await self._listener()
        async with anyio.create_task_group() as tasks:

            async def relay(project_id: str) -> None:
                try:
                    await heard(project_id)
                except Exception as exc:  # one failed relay must not end the listening
                    log.warning("pending_relay_failed", project_id=project_id, error=type(exc).__name__)

            async def listen(connection: asyncpg.Connection) -> None:
                """Until the connection is lost: relay what other replicas announce."""
                lost = anyio.Event()
                schema = await connection.fetchval("SELECT current_schema()")

                def on_notify(_connection: Any, _pid: int, _channel: str, payload: object) -> None:
                    try:
                        note = json.loads(str(payload))
                    except ValueError:
                        return
                    if not isinstance(note, dict) or note.get("schema") != schema or note.get("origin") == self.origin:
                        return
                    tasks.start_soon(relay, str(note.get("project_id", "")))

                connection.add_termination_listener(lambda _connection: lost.set())
                try:
                    await connection.add_listener(PENDING_CHANNEL, on_notify)
                    await lost.wait()
                finally:
                    with anyio.CancelScope(shield=True):
                        await _close(connection)

            async def keep_listening(connection: asyncpg.Connection) -> None:
                while True:
                    with contextlib.suppress(*_UNAVAILABLE, asyncpg.PostgresError):
                        await listen(connection)
                    log.warning("pending_relay_connection_lost", database=self.where)
                    while True:
                        await anyio.sleep(self.relisten_seconds)
                        try:
                            connection = await self._listener()
                        except StateUnavailable:
                            continue
                        log.info("pending_relay_listening_again", database=self.where)
                        break

            tasks.start_soon(keep_listening, first)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()

    async def _listener(self) -> asyncpg.Connection:
        try:
            return await asyncpg.connect(self.url, timeout=10)
        except (*_UNAVAILABLE, asyncpg.PostgresError) as exc:
            raise self.unavailable(exc) from exc


async def _close(connection: asyncpg.Connection) -> None:
    if connection.is_closed():
        connection.terminate()
    else:
        with contextlib.suppress(*_UNAVAILABLE, asyncpg.PostgresError):
            await connection.close(timeout=5)
