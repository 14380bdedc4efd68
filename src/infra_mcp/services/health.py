"""One project's broken storage degrades that project only (issue 16).

Start-up no longer reconciles every project before the server answers: :meth:`HealthService.start`
checks each project in the background, a few at a time, each with a deadline, and keeps the outcome
per project (:class:`~infra_mcp.domain.health.ProjectHealth`). Every service reaches a project's
state through :class:`TrackedStates`, which

- records whether the project's storage answered (healthy) or failed (degraded, STATE_004), and
  turns a storage failure into an error that names the project and the next step;
- before the first use of a project whose reconciliation is not settled (still pending, timed out,
  or failed because the storage did not answer), reconciles it first. So a project whose storage
  comes back recovers at its next call, without a restart, and no execution starts while what an
  interrupted one left in flight is unresolved.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import anyio
import anyio.abc
import structlog

from infra_mcp.domain.health import ProjectHealth, Reconciliation, StorageHealth
from infra_mcp.domain.project import Project
from infra_mcp.domain.state import DataDeletion, HistoryEntry, Journal, LockInfo, StateFile, StateOwner
from infra_mcp.errors import InfraError, StateLocked, StateUnavailable
from infra_mcp.ports import StateStore, StateStores
from infra_mcp.services.execution.reconcile import ReconcileReport

log = structlog.get_logger(__name__)

Reconcile = Callable[[str], Awaitable[ReconcileReport | None]]

# Projects checked at once in the background: enough to finish 50 local projects in a blink,
# few enough that worker threads stay free for the calls agents make meanwhile. A storage call
# runs in a worker thread that a deadline cannot interrupt, so one location that hangs may hold
# PER_LOCATION of them until its timeouts end; the other locations keep the rest.
BACKGROUND_CONCURRENCY = 8
PER_LOCATION = 2
STORAGE_FAILED = StateUnavailable.code

# The projects the current task is reconciling: their own store calls must not wait for themselves.
_reconciling: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("reconciling", default=frozenset())


def degraded(project_id: str, error: StateUnavailable) -> StateUnavailable:
    """The storage error as a caller of ``project_id`` sees it: same code, the project named, the next step."""
    if error.details.get("degraded_project") == project_id:
        return error
    return StateUnavailable(
        f"Project {project_id!r} is degraded: its state storage failed. {error.message} Check the credentials, "
        "the bucket and the region; the project recovers by itself at its next call once the storage answers "
        "(other projects are not affected). Or move the project: an owner sets another allowed state_location "
        "with update_project once its current state can be read again (moving before would orphan its resources). "
        "get_server_status shows each project's storage health.",
        details={**error.details, "degraded_project": project_id},
    )


class HealthService:
    """Per-project storage health and reconciliation, kept in memory for this server process.

    Args:
        deadline_seconds: How long one reconciliation may take (in the background, or before a
            call) before it is abandoned; the project's next call tries again.
    """

    def __init__(self, *, deadline_seconds: float = 60.0) -> None:
        self.deadline_seconds = deadline_seconds
        self._health: dict[str, ProjectHealth] = {}
        self._failures: dict[str, StateUnavailable] = {}
        self._locks: dict[str, anyio.Lock] = {}
        self._cut_off: set[str] = set()  # a storage call of theirs was abandoned by a cancellation
        self._reconcile: Reconcile | None = None

    def bind(self, reconcile: Reconcile) -> None:
        """Set how a project is reconciled (the execution service, which itself needs :class:`TrackedStates`)."""
        self._reconcile = reconcile

    # ---- reading ---------------------------------------------------------------------------

    def of(self, project_id: str) -> ProjectHealth:
        """What is known of ``project_id``; a project this server has not seen yet has nothing pending."""
        known = self._health.get(project_id)
        if known is not None:
            return known
        return ProjectHealth(project_id=project_id, reconciliation=Reconciliation.NOTHING_TO_DO)

    # ---- recording -------------------------------------------------------------------------

    def storage_answered(self, project_id: str) -> None:
        current = self.of(project_id)
        if current.storage is not StorageHealth.HEALTHY:
            log.info("project_storage_healthy", project_id=project_id, was=current.storage.value)
        self._health[project_id] = current.storage_ok()

    def storage_failed(self, project_id: str, error: StateUnavailable) -> None:
        log.warning("project_storage_degraded", project_id=project_id, code=error.code)
        self._failures[project_id] = error
        self._health[project_id] = self.of(project_id).storage_failed(error.code, error.message)

    def storage_cut_off(self, project_id: str) -> None:
        """A storage call of ``project_id`` was cancelled before it answered (see :meth:`_interrupted`)."""
        self._cut_off.add(project_id)

    def forget(self, project_id: str) -> None:
        """Drop a deleted project's record (a project created again under its id starts clean)."""
        self._health.pop(project_id, None)
        self._failures.pop(project_id, None)
        self._locks.pop(project_id, None)

    # ---- reconciliation --------------------------------------------------------------------

    def start(self, group: anyio.abc.TaskGroup, projects: list[tuple[str, str]]) -> None:
        """Mark every project pending and reconcile them in ``group``, a few at a time.

        Args:
            group: Runs the checks; cancelling it abandons the ones still running.
            projects: ``(project_id, state location)`` pairs. At most ``PER_LOCATION`` checks of one
                location run at once, so a location that hangs holds up only its own projects.

        Returns at once: the server answers while this runs, and a call on a project not reached
        yet reconciles that project first.
        """
        self.mark_pending([project_id for project_id, _ in projects])
        overall = anyio.CapacityLimiter(BACKGROUND_CONCURRENCY)
        per_location: dict[str, anyio.CapacityLimiter] = {}

        async def one(project_id: str, location: anyio.CapacityLimiter) -> None:
            async with location, overall:
                await self.settle(project_id)

        for project_id, where in projects:
            location = per_location.setdefault(where, anyio.CapacityLimiter(PER_LOCATION))
            group.start_soon(one, project_id, location, name=f"reconcile {project_id}")

    def mark_pending(self, project_ids: list[str]) -> None:
        """Note that these projects are not reconciled yet: each one's next call reconciles it first."""
        for project_id in project_ids:
            self._health[project_id] = ProjectHealth(project_id=project_id)

    def needs_attempt(self, health: ProjectHealth) -> bool:
        """Whether the project's next call must reconcile first (see the module docstring)."""
        if health.reconciliation in (Reconciliation.PENDING, Reconciliation.RUNNING, Reconciliation.TIMED_OUT):
            return True
        return health.reconciliation is Reconciliation.FAILED and _code(health) == STORAGE_FAILED

    async def settle(self, project_id: str, *, deadline: float | None = None) -> ProjectHealth:
        """Reconcile ``project_id`` unless that is already settled; never raises for the outcome.

        Waiting for another task's reconciliation of the same project counts against the deadline.
        """
        if project_id in _reconciling.get() or not self.needs_attempt(self.of(project_id)):
            return self.of(project_id)
        limit = self.deadline_seconds if deadline is None else deadline
        lock = self._locks.setdefault(project_id, anyio.Lock())
        with anyio.move_on_after(limit) as scope:
            async with lock:
                if self.needs_attempt(self.of(project_id)):
                    await self._attempt(project_id, scope)
        return self.of(project_id)

    async def settle_pending(self, project_id: str) -> ProjectHealth:
        """Like :meth:`settle`, but only for a project not tried yet (or being tried now).

        For calls that do not need the project's storage (its plans): they wait for a first attempt,
        whose outcome may change a plan, but never hit a storage that already failed again.
        """
        if self.of(project_id).reconciliation in (Reconciliation.PENDING, Reconciliation.RUNNING):
            return await self.settle(project_id)
        return self.of(project_id)

    async def _attempt(self, project_id: str, scope: anyio.CancelScope) -> None:
        if self._reconcile is None:
            raise RuntimeError("HealthService.bind was not called")
        self._health[project_id] = self.of(project_id).reconciling()
        self._cut_off.discard(project_id)
        token = _reconciling.set(_reconciling.get() | {project_id})
        outcome: Reconciliation | None = None
        try:
            report = await self._reconcile(project_id)
            outcome = Reconciliation.NOTHING_TO_DO if report is None else Reconciliation.RECONCILED
            if report is not None:
                log.warning("reconciled_interrupted_execution", report=report.model_dump(mode="json"))
        except StateLocked:
            # Another holder (an execution of another replica, say) has the lock: its run, or the
            # project's next execution, reconciles under that lock. Reading meanwhile is harmless.
            outcome = Reconciliation.DEFERRED
            log.warning("reconcile_skipped_locked", project_id=project_id)
        except InfraError as exc:
            # A storage failure keeps the storage's own words (TrackedStore recorded them unwrapped).
            message = self._failures.get(project_id, exc).message if isinstance(exc, StateUnavailable) else exc.message
            self._health[project_id] = self.of(project_id).reconcile_failed(exc.code, message)
            log.error("reconcile_failed", project_id=project_id, code=exc.code)
        except Exception:
            # A bug must not take the server (and every other project) down with it: recorded, logged.
            log.exception("reconcile_crashed", project_id=project_id)
            self._health[project_id] = self.of(project_id).reconcile_failed(
                "INTERNAL_001", "Reconciliation hit an unexpected error; the server log (stderr) has the details."
            )
        finally:
            _reconciling.reset(token)
            if self.of(project_id).reconciliation is Reconciliation.RUNNING and outcome is None:
                self._interrupted(project_id, timed_out=anyio.current_time() >= scope.deadline)
        if outcome is not None:
            self._health[project_id] = self.of(project_id).reconciled(outcome)

    def _interrupted(self, project_id: str, *, timed_out: bool) -> None:
        """Cancelled: by the deadline, or because the server is stopping. The next call tries again.

        A deadline that cut off a storage call means the storage did not answer: the project is
        degraded (STATE_004). Otherwise the time went elsewhere (polling Cloud Control, say).
        """
        stalled = project_id in self._cut_off
        self._cut_off.discard(project_id)
        if not timed_out:
            self._health[project_id] = self.of(project_id).model_copy(update={"reconciliation": Reconciliation.PENDING})
            return
        log.error("reconcile_timed_out", project_id=project_id, deadline_seconds=self.deadline_seconds)
        if stalled:
            silent = StateUnavailable(
                f"The state storage of project {project_id!r} did not answer within {self.deadline_seconds:g} s "
                "(INFRA_MCP_RECONCILE_DEADLINE_SECONDS). Check that the storage is reachable "
                "(get_server_status shows its health), then retry; if it is only slow, raise that setting.",
                details={"project_id": project_id, "timed_out": True},
            )
            self.storage_failed(project_id, silent)
            self._health[project_id] = self.of(project_id).reconcile_failed(silent.code, silent.message)
            return
        self._health[project_id] = self.of(project_id).reconcile_failed(
            "STATE_003",
            f"Reconciliation did not finish within {self.deadline_seconds:g} s; the project's next call tries again.",
            timed_out=True,
        )

    async def ready(self, project_id: str) -> None:
        """Return once ``project_id`` has nothing to reconcile before a call may use its state.

        Raises:
            StateUnavailable: STATE_004, the project's storage does not answer (it stays degraded).
            StateLocked: STATE_003, its reconciliation is still running after the deadline.
        """
        if project_id in _reconciling.get() or not self.needs_attempt(self.of(project_id)):
            return
        health = await self.settle(project_id)
        if not self.needs_attempt(health):
            return
        failure = self._failures.get(project_id)
        if _code(health) == STORAGE_FAILED and failure is not None:
            raise degraded(project_id, failure)
        raise StateLocked(
            f"Project {project_id!r} is being reconciled (what an interrupted execution left in flight is checked "
            f"before anything else), and that did not finish within {self.deadline_seconds:g} s. Try again in a "
            "minute; get_server_status shows when it is done.",
            details={"project_id": project_id, "reconciliation": health.reconciliation.value},
        )


def _code(health: ProjectHealth) -> str | None:
    return health.error.code if health.error is not None else None


class TrackedStore:
    """The :class:`~infra_mcp.ports.StateStore` port of one project, watched by :class:`HealthService`.

    Args:
        inner: The project's store (already scoped to its incarnation).
        project_id: The project it serves.
        health: Where answers and failures are recorded.
    """

    def __init__(self, inner: StateStore, project_id: str, health: HealthService) -> None:
        self.inner = inner
        self.project_id = project_id
        self.health = health

    def __repr__(self) -> str:
        return f"TrackedStore({self.inner!r})"

    @contextmanager
    def _watched(self) -> Iterator[None]:
        try:
            yield
        except anyio.get_cancelled_exc_class():
            self.health.storage_cut_off(self.project_id)
            raise
        except StateUnavailable as exc:
            if exc.details.get("degraded_project") != self.project_id:  # not one already recorded
                self.health.storage_failed(self.project_id, exc)
            raise degraded(self.project_id, exc) from None
        except InfraError:
            self.health.storage_answered(self.project_id)  # a conflict, a lock, a missing version: it answered
            raise
        self.health.storage_answered(self.project_id)

    async def read(self, project_id: str) -> StateFile | None:
        await self.health.ready(self.project_id)
        with self._watched():
            return await self.inner.read(project_id)

    async def write(self, state: StateFile) -> StateFile:
        await self.health.ready(self.project_id)
        with self._watched():
            return await self.inner.write(state)

    async def history(self, project_id: str) -> list[HistoryEntry]:
        await self.health.ready(self.project_id)
        with self._watched():
            return await self.inner.history(project_id)

    async def read_version(self, project_id: str, serial: int) -> StateFile:
        await self.health.ready(self.project_id)
        with self._watched():
            return await self.inner.read_version(project_id, serial)

    async def acquire_lock(self, project_id: str, *, owner: str, operation: str, lease_seconds: float) -> LockInfo:
        await self.health.ready(self.project_id)
        with self._watched():
            return await self.inner.acquire_lock(
                project_id, owner=owner, operation=operation, lease_seconds=lease_seconds
            )

    async def renew_lock(self, project_id: str, lock: LockInfo, *, lease_seconds: float) -> LockInfo:
        # Part of an operation already running: waiting for a reconciliation here could never end.
        with self._watched():
            return await self.inner.renew_lock(project_id, lock, lease_seconds=lease_seconds)

    async def release_lock(self, project_id: str, lock: LockInfo) -> None:
        with self._watched():
            await self.inner.release_lock(project_id, lock)

    async def read_journal(self, project_id: str) -> Journal:
        await self.health.ready(self.project_id)
        with self._watched():
            return await self.inner.read_journal(project_id)

    async def write_journal(self, journal: Journal) -> None:
        with self._watched():
            await self.inner.write_journal(journal)

    async def delete_project_data(
        self, project_id: str, *, owner: StateOwner, lock: LockInfo | None = None
    ) -> DataDeletion:
        with self._watched():
            return await self.inner.delete_project_data(project_id, owner=owner, lock=lock)


class TrackedStates:
    """The :class:`~infra_mcp.ports.StateStores` port, handing out :class:`TrackedStore` s.

    Args:
        inner: Picks each project's store (the registry of state locations).
        health: Shared by every store handed out.
    """

    def __init__(self, inner: StateStores, health: HealthService) -> None:
        self.inner = inner
        self.health = health

    def for_project(self, project: Project) -> TrackedStore:
        """The project's store, watched.

        Raises:
            ValidationFailed: VALIDATION_001 if its location is malformed or not allowed by the operator.
            StateUnavailable: STATE_004 if its storage cannot even be set up (an S3 profile that does not exist).
        """
        try:
            store = self.inner.for_project(project)
        except StateUnavailable as exc:
            self.health.storage_failed(project.id, exc)
            raise degraded(project.id, exc) from None
        return TrackedStore(store, project.id, self.health)
