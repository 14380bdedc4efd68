"""The execution's record keeping: the working copy of state, checkpoints and the request journal.

The invariant that makes a crash recoverable: a Cloud Control request is journaled *before* it is
sent, and its journal entry is removed only *after* a state version holding its result was written.
Whatever happens in between, the journal names every request whose result state may be missing, and
``reconcile`` finishes the job from it alone.

Checkpoints are rate-bounded: a state version is written when at least ``every`` results are waiting
or ``interval`` seconds passed since the last write, plus always a final one. Each write is
``current.next_version(...)``, so every version lands in history.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import anyio
import structlog

from infra_mcp.domain.common import utcnow
from infra_mcp.domain.state import CHECKPOINT_PREFIX, Journal, JournalEntry, StateFile, StateMetadata, StateResource
from infra_mcp.ports import StateStore

log = structlog.get_logger(__name__)

RETIRED_MARK = "~replaced~"
# How long an execution that is being cancelled may spend writing its last checkpoint.
CANCEL_CHECKPOINT_SECONDS = 10.0


def retired_name(name: str, physical_id: str | None) -> str:
    """Name under which the old half of a replacement stays recorded until its deletion is confirmed.

    ``~`` cannot appear in a declared name, so this never collides with one; the next plan sees a
    resource that is not desired and proposes to delete it.
    """
    return f"{name}{RETIRED_MARK}{physical_id or 'unknown'}"


class Ledger:
    """Working resources by logical name, written to the state store at a bounded rate.

    Args:
        store: The project's state store.
        current: The state to continue from (an empty serial-0 state if never written).
        plan_id: Recorded as ``changePlanId`` in every version written.
        user: Recorded as ``lastModifiedBy``.
        clock: Current time.
        interval: Seconds between checkpoints (at most one per interval, unless ``every`` is reached).
        every: Results after which a checkpoint is written regardless of time.
        after_write: Awaited after each state write, before the journal entries it covers are
            dropped (execution saves the plan's outcomes there, so they are never behind the journal).
    """

    def __init__(
        self,
        store: StateStore,
        current: StateFile,
        *,
        plan_id: str | None,
        user: str,
        clock: Callable[[], datetime],
        interval: float,
        every: int,
        after_write: Callable[[StateFile], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.current = current
        self.plan_id = plan_id
        self.user = user
        self.clock = clock
        self.interval = interval
        self.every = every
        self.after_write = after_write
        self.resources: dict[str, StateResource] = {r.name: r for r in current.resources}
        # Checkpoints carry the outputs of the state they started from; the final version gets the plan's.
        self.outputs: dict[str, Any] | None = current.outputs
        self.journal = Journal(project_id=current.project_id)
        self.writes = 0
        self._pending = 0
        self._dirty = False
        self._settled: set[str] = set()
        self._last_write = clock()
        self._state_lock = anyio.Lock()
        self._edits = 0
        self._committed = 0
        self._committing: anyio.Event | None = None
        self.journal_writes = 0

    # ---- journal --------------------------------------------------------------------------
    #
    # Journal writes are durable (fsync on disk, a PUT on S3) and every operation needs them, so
    # they are group-committed: edits land in memory at once, and whoever finds no write in
    # progress writes everything edited so far; the others wait for the write that covers them.

    async def load_journal(self) -> Journal:
        self.journal = await self.store.read_journal(self.current.project_id)
        return self.journal

    def note(self, entry: JournalEntry) -> None:
        """Add (or replace) ``entry`` in memory; :meth:`commit_journal` makes it durable."""
        self.journal.entries = [e for e in self.journal.entries if e.client_token != entry.client_token]
        self.journal.entries.append(entry)
        self._edits += 1

    def note_request(self, client_token: str, *, request_token: str, physical_id: str | None) -> None:
        for entry in self.journal.entries:
            if entry.client_token == client_token:
                entry.request_token = request_token
                entry.physical_id = physical_id or entry.physical_id
        self._edits += 1

    async def journal_add(self, entry: JournalEntry) -> None:
        """Add ``entry`` and return once it is durable."""
        self.note(entry)
        await self.commit_journal()

    async def commit_journal(self) -> None:
        """Return once every edit made before this call is written."""
        target = self._edits
        while self._committed < target:
            if self._committing is not None:
                await self._committing.wait()
                continue
            done = self._committing = anyio.Event()
            covered = self._edits
            try:
                # Entries are edited in place meanwhile: the store gets its own (shallow) copies.
                entries = [e.model_copy() for e in self.journal.entries]
                await self.store.write_journal(Journal(project_id=self.journal.project_id, entries=entries))
                self._committed = max(self._committed, covered)
                self.journal_writes += 1
            finally:
                self._committing = None
                done.set()

    def settle(self, client_token: str) -> None:
        """The request's result is in the working copy: drop its entry after the next state write."""
        self._settled.add(client_token)

    async def _drop_settled(self, tokens: set[str]) -> None:
        if not tokens:
            return
        self.journal.entries = [e for e in self.journal.entries if e.client_token not in tokens]
        self._edits += 1
        await self.commit_journal()

    # ---- working copy ---------------------------------------------------------------------

    def put(self, record: StateResource) -> None:
        """Record ``record`` under its name; an old resource of that name with another id is retired."""
        old = self.resources.get(record.name)
        if old is not None and old.id != record.id:
            retired = old.model_copy(update={"name": retired_name(old.name, old.id)})
            self.resources[retired.name] = retired
        self.resources[record.name] = record
        self._dirty = True

    def remove(self, type_name: str, physical_id: str | None, name: str) -> None:
        """Forget the resource ``physical_id`` of ``type_name`` (it is confirmed gone)."""
        for key, resource in list(self.resources.items()):
            if (
                resource.type == type_name
                and resource.id == physical_id
                and (key == name or key.startswith(name + RETIRED_MARK))
            ):
                del self.resources[key]
                self._dirty = True
                return

    def record_outputs(self, outputs: dict[str, Any] | None) -> None:
        """Keep ``outputs`` (resolved) in the versions written from now on."""
        if outputs != self.outputs:
            self.outputs = outputs
            self._dirty = True

    def touch(self) -> None:
        self._dirty = True

    # ---- checkpoints ----------------------------------------------------------------------

    async def result_recorded(self) -> None:
        """Count one result; write a checkpoint if the batch or the interval is reached."""
        self._pending += 1
        if self._state_lock.locked():
            return  # a checkpoint is being written; the next one picks this result up
        elapsed = (self.clock() - self._last_write).total_seconds()
        if self._pending >= self.every or elapsed >= self.interval:
            await self.flush(description=f"{CHECKPOINT_PREFIX}{self.plan_id}", checkpoint=True)

    async def checkpoint_on_cancel(self) -> None:
        """Write a checkpoint of what was settled, shielded from the cancellation that stops the execution.

        Bounded by ``CANCEL_CHECKPOINT_SECONDS``; a write that fails or times out is logged and the
        journal (written before every request) still lets reconciliation find everything.
        """
        with anyio.CancelScope(shield=True), anyio.move_on_after(CANCEL_CHECKPOINT_SECONDS):
            try:
                await self.flush(description=f"{CHECKPOINT_PREFIX}{self.plan_id}", checkpoint=True)
            except Exception as exc:  # the cancellation goes on whatever happens here
                log.warning("checkpoint_on_cancel_failed", plan_id=self.plan_id, error=str(exc)[:200])
            else:
                log.info("checkpoint_on_cancel", plan_id=self.plan_id, serial=self.current.serial)

    def _next_version(self, resources: list[StateResource], description: str, checkpoint: bool) -> StateFile:
        """``current.next_version(...)`` with the checksum left to the store.

        The store computes it over the very document it stores (one serialisation of the
        resources); ``next_version`` would take it over a second one, on the event loop.
        """
        return StateFile(
            project_id=self.current.project_id,
            serial=self.current.serial + 1,
            lineage=self.current.lineage,
            timestamp=utcnow(),
            metadata=StateMetadata(
                last_modified_by=self.user,
                change_description=description,
                change_plan_id=self.plan_id,
                checkpoint=checkpoint,
            ),
            resources=resources,
            outputs=self.outputs,
        )

    async def flush(self, *, description: str, final: bool = False, checkpoint: bool = False) -> StateFile:
        """Write the working copy as the next version (if anything changed, or always when ``final``).

        ``checkpoint`` marks an intermediate version, so history can group it under its plan's final one.
        """
        async with self._state_lock:
            self._pending = 0
            tokens = set(self._settled)
            if self._dirty or (final and self.writes > 0):
                # Records are replaced, never mutated in place, so the version can share them.
                resources = list(self.resources.values())
                version = self._next_version(resources, description, checkpoint)
                self.current = await self.store.write(version)
                self.writes += 1
                self._dirty = False
                log.info("state_checkpoint", serial=self.current.serial, final=final, resources=len(resources))
            self._last_write = self.clock()
            if self.after_write is not None:
                await self.after_write(self.current)
            self._settled -= tokens
            await self._drop_settled(tokens)
            return self.current
