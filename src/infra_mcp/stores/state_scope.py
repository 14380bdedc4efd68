"""A project's view of its state store: only its own incarnation's state (DESIGN §3).

Several projects share one store per location, and a project id can be deleted and created
again. :class:`IncarnationScope` is what :class:`~infra_mcp.ports.StateStores` hands a service for
one project: every version it writes (state and journal) carries the project's incarnation, and
it refuses to read a version another incarnation wrote, so a re-created project never adopts the
previous owner's resources by accident.
"""

from __future__ import annotations

from infra_mcp.domain.state import DataDeletion, HistoryEntry, Journal, LockInfo, StateFile, StateOwner
from infra_mcp.errors import AlreadyExists
from infra_mcp.ports import StateStore


class IncarnationScope:
    """The :class:`~infra_mcp.ports.StateStore` port for one project incarnation, over a shared store.

    Args:
        inner: The location's store.
        owner: The project incarnation this view belongs to.
    """

    def __init__(self, inner: StateStore, owner: StateOwner) -> None:
        self.inner = inner
        self.owner = owner

    def __repr__(self) -> str:
        return f"IncarnationScope({self.inner!r}, {self.owner.project_id}@{self.owner.incarnation})"

    async def read(self, project_id: str) -> StateFile | None:
        """The current state, if this incarnation wrote it.

        Raises:
            AlreadyExists: CONFLICT_001 describing state another incarnation wrote.
        """
        state = await self.inner.read(project_id)
        return None if state is None else self.owner.require(state)

    async def write(self, state: StateFile) -> StateFile:
        metadata = state.metadata.model_copy(update={"incarnation": self.owner.incarnation})
        return await self.inner.write(state.model_copy(update={"metadata": metadata}))

    async def history(self, project_id: str) -> list[HistoryEntry]:
        """This incarnation's versions, newest first, plus damaged ones (whose owner nobody can tell)."""
        entries = await self.inner.history(project_id)
        return [entry for entry in entries if not entry.valid or self.owner.owns(entry.incarnation)]

    async def read_version(self, project_id: str, serial: int) -> StateFile:
        """One version from history, if this incarnation wrote it (CONFLICT_001 otherwise)."""
        state = await self.inner.read_version(project_id, serial)
        return self.owner.require(state, what=f"state version {serial}")

    async def acquire_lock(self, project_id: str, *, owner: str, operation: str, lease_seconds: float) -> LockInfo:
        return await self.inner.acquire_lock(project_id, owner=owner, operation=operation, lease_seconds=lease_seconds)

    async def renew_lock(self, project_id: str, lock: LockInfo, *, lease_seconds: float) -> LockInfo:
        return await self.inner.renew_lock(project_id, lock, lease_seconds=lease_seconds)

    async def release_lock(self, project_id: str, lock: LockInfo) -> None:
        await self.inner.release_lock(project_id, lock)

    async def read_journal(self, project_id: str) -> Journal:
        """The journal of in-flight requests, if this incarnation wrote it (CONFLICT_001 otherwise)."""
        journal = await self.inner.read_journal(project_id)
        if journal.entries and not self.owner.owns(journal.incarnation):
            raise AlreadyExists(
                f"The request journal of project {project_id!r} holds {len(journal.entries)} in-flight requests "
                f"of another incarnation ({journal.incarnation or 'unmarked'}); this project will not act on them. "
                "Check those resources in AWS; import what should be kept.",
                details={
                    "project_id": project_id,
                    "incarnation": self.owner.incarnation,
                    "found": {"incarnation": journal.incarnation, "entries": len(journal.entries)},
                },
            )
        return journal

    async def write_journal(self, journal: Journal) -> None:
        await self.inner.write_journal(journal.model_copy(update={"incarnation": self.owner.incarnation}))

    async def delete_project_data(
        self, project_id: str, *, owner: StateOwner, lock: LockInfo | None = None
    ) -> DataDeletion:
        return await self.inner.delete_project_data(project_id, owner=owner, lock=lock)
