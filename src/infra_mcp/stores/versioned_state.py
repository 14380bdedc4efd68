"""What the S3 and local-folder state stores share (DESIGN §3).

Both backends keep the same keys under their root::

    <project_id>/state.json            the current version
    <project_id>/history/<serial>.json every version ever written, create-only
    <project_id>/state.lock            the lease lock
    <project_id>/journal.json          in-flight Cloud Control requests

A backend only has to offer a handful of *conditional* blob operations (:class:`BlobBackend`);
:class:`VersionedStateStore` builds the whole :class:`~infra_mcp.ports.StateStore` contract on
them, so serial/lineage rules, roll-forward, corruption reports and lock leases behave the same
on S3 and on disk.

The arbiter of a race between writers is the create-only ``history/<serial>.json``: of two
writers from the same serial exactly one can create it. ``state.json`` is only a pointer to the
newest version, replaced compare-and-swap; if a writer dies between the two steps, readers roll
forward to the newer history version.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Protocol, TypeVar

import anyio.to_thread
import pydantic_core
import structlog
from pydantic import ValidationError

from infra_mcp.domain.common import isoformat, utcnow, validate_project_id
from infra_mcp.domain.state import (
    CHECKPOINT_PREFIX,
    DataDeletion,
    HistoryEntry,
    Journal,
    LockInfo,
    StateFile,
    StateOwner,
    document_checksum,
)
from infra_mcp.errors import (
    NotFound,
    StateConflict,
    StateCorrupted,
    StateLocked,
    StateUnavailable,
    ValidationFailed,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")
Clock = Callable[[], datetime]

STATE_NAME = "state.json"
LOCK_NAME = "state.lock"
JOURNAL_NAME = "journal.json"
HISTORY_DIR = "history"
# Canonical decimal only: "07.json" would be a second key for serial 7.
_HISTORY_NAME = re.compile(r"^(?:0|[1-9][0-9]*)\.json$")
# How often a committed writer retries moving state.json forward before leaving it to roll-forward.
_POINTER_ATTEMPTS = 8


# --------------------------------------------------------------------------- key layout


@dataclass(frozen=True)
class ProjectKeys:
    """The keys of one project, relative to the store's root (bucket prefix or folder)."""

    project_id: str

    @classmethod
    def of(cls, project_id: object) -> ProjectKeys:
        """Keys for ``project_id`` after validating it, so no key can escape the project's prefix.

        Raises:
            ValidationFailed: VALIDATION_001 for an unsafe id.
        """
        return cls(validate_project_id(project_id))

    @property
    def root(self) -> str:
        return f"{self.project_id}/"

    @property
    def state(self) -> str:
        return f"{self.project_id}/{STATE_NAME}"

    @property
    def lock(self) -> str:
        return f"{self.project_id}/{LOCK_NAME}"

    @property
    def journal(self) -> str:
        return f"{self.project_id}/{JOURNAL_NAME}"

    @property
    def history_prefix(self) -> str:
        return f"{self.project_id}/{HISTORY_DIR}/"

    def history(self, serial: int) -> str:
        return f"{self.history_prefix}{serial}.json"

    def serial_of(self, key: str) -> int | None:
        """The serial a history key names, or None for anything else (temp files, strays)."""
        if not key.startswith(self.history_prefix):
            return None
        name = key[len(self.history_prefix) :]
        return int(name[: -len(".json")]) if _HISTORY_NAME.fullmatch(name) else None


# --------------------------------------------------------------------------- backend primitives


@dataclass(frozen=True)
class Blob:
    """An object as read: its bytes, an opaque version tag for conditional writes, and when it was stored."""

    data: bytes
    etag: str
    modified: datetime | None = None


class PreconditionFailed(Exception):
    """A conditional operation lost: the key already exists, or changed since it was read."""


class BlobBackend(Protocol):
    """Conditional object storage. Methods are blocking; the store calls them from a worker thread.

    Every method raises :class:`~infra_mcp.errors.StateUnavailable` (STATE_004) when the storage
    itself fails (missing bucket, access denied, unreachable endpoint, disk error).
    """

    def get(self, key: str) -> Blob | None:
        """The object at ``key``, or None if absent."""
        ...

    def put(self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False) -> str:
        """Store ``data`` atomically and return its new etag.

        ``if_none_match`` creates only if absent; ``if_match`` replaces only the version with that
        etag. Raises PreconditionFailed when the condition does not hold.
        """
        ...

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Delete ``key`` (no error if absent); with ``if_match`` only that version (else PreconditionFailed)."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, in no particular order."""
        ...

    def prune(self, prefix: str) -> None:
        """Remove the folder ``prefix`` names if it is empty (backends without folders do nothing).

        There is deliberately no recursive delete: a project deletes only keys it wrote, one by one.
        """
        ...


# --------------------------------------------------------------------------- parsing and errors


class Damaged(Exception):
    """A stored document failed to parse or verify; the message says how (never its content)."""


def encode(document: object) -> bytes:
    """The bytes a document is stored as: indented JSON, so a human reading the bucket can follow it.

    Keys sorted, two-space indent, UTF-8 (what ``json.dumps(indent=2, sort_keys=True,
    ensure_ascii=False)`` writes, give or take the spelling of a float's exponent), written by
    pydantic-core: the standard library's indenting encoder is pure Python, several times slower,
    and every journal write and checkpoint goes through here. ``document`` holds JSON types only.
    """
    return pydantic_core.to_json(_sorted_keys(document), indent=2) + b"\n"


def _sorted_keys(value: object) -> object:
    if isinstance(value, dict):
        return {key: _sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(item) for item in value]
    return value


def parse_state(data: bytes, *, project_id: str, serial: int | None = None) -> StateFile:
    """Parse and verify a stored state document.

    Args:
        data: The stored bytes.
        project_id: The project whose key it was read from.
        serial: For a history file, the serial its name promises.

    Raises:
        Damaged: truncated, not JSON, not a state file, checksum mismatch, or filed under the wrong name.
    """
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise Damaged("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise Damaged(f"truncated or not JSON ({exc.msg} at character {exc.pos})") from None
    try:
        state = StateFile.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        raise Damaged(f"not a valid state file ({where}: {first['msg']})") from None
    if state.project_id != project_id:
        raise Damaged(f"it belongs to project {state.project_id!r}")
    if serial is not None and state.serial != serial:
        raise Damaged(f"it holds serial {state.serial}, not {serial}")
    if not state.checksum_ok():
        raise Damaged("checksum mismatch: its resources were changed after it was written (edited by hand?)")
    return state


def history_entry(state: StateFile) -> HistoryEntry:
    return HistoryEntry(
        serial=state.serial,
        timestamp=state.timestamp,
        last_modified_by=state.metadata.last_modified_by,
        change_description=state.metadata.change_description,
        change_plan_id=state.metadata.change_plan_id,
        checksum=state.metadata.checksum,
        resource_count=len(state.resources),
        incarnation=state.metadata.incarnation,
        # Versions written before the flag existed are recognised by the description they were given.
        checkpoint=state.metadata.checkpoint or state.metadata.change_description.startswith(CHECKPOINT_PREFIX),
    )


def damaged_history_entry(serial: int, blob: Blob, reason: str) -> HistoryEntry:
    """A listing row for a history file that cannot be trusted, so the listing itself never breaks."""
    return HistoryEntry(
        serial=serial,
        timestamp=blob.modified or datetime(1970, 1, 1, tzinfo=UTC),
        last_modified_by="",
        change_description=f"damaged: {reason}",
        change_plan_id=None,
        checksum="",
        resource_count=0,
        valid=False,
    )


def corrupted(project_id: str, what: str, reason: str, newest_valid: int | None) -> StateCorrupted:
    """STATE_001 for ``what`` (a key), naming the newest valid history version to restore."""
    if newest_valid is None:
        advice = "No valid version exists in history to restore from; restore the file from a backup."
    else:
        advice = f"Call restore_state with version {newest_valid} (the newest valid version in history)."
    return StateCorrupted(
        f"State of project {project_id!r} is corrupted: {what} is {reason}. {advice}",
        details={"project_id": project_id, "key": what, "reason": reason, "newest_valid_version": newest_valid},
    )


def conflict(project_id: str, current_serial: int, attempted: StateFile, why: str = "") -> StateConflict:
    return StateConflict(
        f"State of project {project_id!r} moved to serial {current_serial}{why}; re-read and retry.",
        details={
            "project_id": project_id,
            "current_serial": current_serial,
            "attempted_serial": attempted.serial,
        },
    )


def locked(project_id: str, holder: LockInfo | None) -> StateLocked:
    if holder is None:
        return StateLocked(
            f"The state lock of project {project_id!r} changed hands while we were taking it; retry.",
            details={"project_id": project_id},
        )
    return StateLocked(
        f"State of project {project_id!r} is locked by {holder.owner!r} for {holder.operation!r} until "
        f"{isoformat(holder.expires_at)}. Wait for it to finish (or for the lease to expire) and retry.",
        details={
            "project_id": project_id,
            "owner": holder.owner,
            "operation": holder.operation,
            "lock_id": holder.lock_id,
            "expires_at": isoformat(holder.expires_at),
        },
    )


def _parse_lock(blob: Blob) -> LockInfo | None:
    """The lock a blob holds, or None if unreadable (an unreadable lock may be taken over: it guards nothing)."""
    try:
        return LockInfo.model_validate_json(blob.data).model_copy(update={"etag": blob.etag})
    except ValidationError:
        return None


# --------------------------------------------------------------------------- the store


@dataclass
class _Head:
    """Where a project's state stands right now."""

    pointer: Blob | None  # state.json as read: its etag guards the compare-and-swap
    pointer_serial: int | None  # the serial state.json holds, None if absent or damaged
    serial: int  # the newest committed serial (0: never written)
    current: StateFile | None  # the trustworthy current version, if there is one
    damage: tuple[str, str] | None  # (key, reason) when the current version cannot be trusted


class VersionedStateStore:
    """The :class:`~infra_mcp.ports.StateStore` contract over a :class:`BlobBackend`.

    Args:
        backend: The conditional blob storage.
        clock: Current time (injectable so lease tests need no sleeps).
    """

    def __init__(self, backend: BlobBackend, *, clock: Clock = utcnow) -> None:
        self.backend = backend
        self._clock = clock
        # state.json key -> (etag, serial, lineage) of the pointer this store last wrote. An etag
        # names one version of the bytes (conditional writes already rely on that), so while
        # state.json still carries it the next write need not re-read and re-verify the document.
        self._written: dict[str, tuple[str, int, str]] = {}

    async def _run(self, func: Callable[..., T], *args: object) -> T:
        # Backends block (boto3, file I/O): keep them off the event loop.
        return await anyio.to_thread.run_sync(partial(func, *args))

    async def _look(self, func: Callable[..., T], *args: object) -> T:
        """Run a read in a worker thread that a cancellation (a deadline, shutdown) leaves behind.

        A storage that does not answer holds the thread until its timeouts end; the caller need not
        wait with it. Only reads: their one possible write (moving state.json up to a rolled-forward
        version) is compare-and-swap, harmless if it lands late. Writes and locks are always waited
        for, so nobody is left guessing whether one happened.
        """
        return await anyio.to_thread.run_sync(partial(func, *args), abandon_on_cancel=True)

    # ----------------------------------------------------------------- public API

    async def read(self, project_id: str) -> StateFile | None:
        """The current state, or None if never written.

        Raises:
            ValidationFailed: VALIDATION_001 for an unsafe project id.
            StateCorrupted: STATE_001, ``details["newest_valid_version"]`` names what to restore.
            StateUnavailable: STATE_004.
        """
        return await self._look(self._read, ProjectKeys.of(project_id))

    async def write(self, state: StateFile) -> StateFile:
        """Write ``state`` as the next version (serial = current + 1, same lineage) and return what was stored.

        Raises:
            ValidationFailed: VALIDATION_001 for an unsafe project id or a checksum that does not match.
            StateConflict: STATE_002 when the serial or lineage moved (another writer won).
            StateUnavailable: STATE_004.
        """
        keys = ProjectKeys.of(state.project_id)
        # The JSON document is the snapshot that gets stored: later changes to ``state`` cannot reach
        # it. The checksum is taken over the same dump (``resources_checksum`` dumps each resource
        # exactly as the document does), so a 200-resource checkpoint is serialised once, not three
        # times plus a deep copy, on the event loop.
        document = state.to_document()
        checksum = document_checksum(document)
        if not state.metadata.checksum:
            document["metadata"]["checksum"] = checksum
        elif state.metadata.checksum != checksum:
            raise ValidationFailed(
                "The state's metadata.checksum does not match its resources and outputs; leave it empty to have it computed.",
                details={"project_id": keys.project_id, "serial": state.serial},
            )
        # What was stored, as a new object (the caller's is not mutated); the resource records are
        # shared with ``state``: callers replace records, they never edit one in place.
        stored = state.model_copy(
            update={
                "metadata": state.metadata.model_copy(update={"checksum": checksum}),
                "resources": list(state.resources),
            }
        )
        return await self._run(self._write, keys, stored, document)

    async def history(self, project_id: str) -> list[HistoryEntry]:
        """Every version, newest first; a damaged history file is listed with ``valid=False``."""
        return await self._look(self._history, ProjectKeys.of(project_id))

    async def read_version(self, project_id: str, serial: int) -> StateFile:
        """One version from history.

        Raises:
            NotFound: RESOURCE_001 if there is no such version.
            StateCorrupted: STATE_001 if that version is damaged.
        """
        return await self._look(self._read_version, ProjectKeys.of(project_id), serial)

    async def acquire_lock(self, project_id: str, *, owner: str, operation: str, lease_seconds: float) -> LockInfo:
        """Take the project's lease lock, taking over an expired one.

        Raises:
            StateLocked: STATE_003 while another unexpired lease holds it, or when another taker won.
        """
        keys = ProjectKeys.of(project_id)
        _check_lease(lease_seconds)
        return await self._run(self._acquire, keys, owner, operation, lease_seconds)

    async def renew_lock(self, project_id: str, lock: LockInfo, *, lease_seconds: float) -> LockInfo:
        """Extend our lease from now.

        Raises:
            StateLocked: STATE_003 if the lock is no longer ours (released, or taken over after expiry).
        """
        keys = ProjectKeys.of(project_id)
        _check_lease(lease_seconds)
        return await self._run(self._renew, keys, lock, lease_seconds)

    async def release_lock(self, project_id: str, lock: LockInfo) -> None:
        """Release our lease. Someone else's lock is left alone; an absent lock is not an error."""
        await self._run(self._release, ProjectKeys.of(project_id), lock)

    async def read_journal(self, project_id: str) -> Journal:
        """The project's journal of in-flight requests (empty if none was written)."""
        return await self._look(self._read_journal, ProjectKeys.of(project_id))

    async def write_journal(self, journal: Journal) -> None:
        keys = ProjectKeys.of(journal.project_id)
        await self._run(self.backend.put, keys.journal, encode(journal.model_dump(mode="json")))

    async def delete_project_data(
        self, project_id: str, *, owner: StateOwner, lock: LockInfo | None = None
    ) -> DataDeletion:
        """Delete the keys this project incarnation wrote: history versions, state.json, journal, and ``lock``.

        Each key is read and checked before it goes (a state version or journal of ``owner``'s
        incarnation; the lock only if it is still ``lock``), and deleted only if unchanged since.
        Anything else under the project's keys (another incarnation's versions, damaged or stray
        files) is left alone and reported. Never a recursive delete.
        """
        keys = ProjectKeys.of(project_id)
        return await self._run(self._delete_data, keys, owner, lock)

    # ----------------------------------------------------------------- state

    def _head(self, keys: ProjectKeys) -> _Head:
        pointer = self.backend.get(keys.state)
        base: StateFile | None = None
        if pointer is not None:
            try:
                base = parse_state(pointer.data, project_id=keys.project_id)
            except Damaged as exc:
                # history is written before state.json, so its newest name is the newest committed serial
                serial = max(self._history_serials(keys), default=0)
                return _Head(pointer, None, serial, None, (keys.state, str(exc)))
        if base is None:
            # Never written, or a first writer died before creating state.json: roll forward if history says so.
            serials = self._history_serials(keys)
            if not serials:
                return _Head(pointer, None, 0, None, None)
            newest = max(serials)
            found = self._version_or_damage(keys, newest)
            if isinstance(found, StateFile):
                return _Head(pointer, None, newest, found, None)
            if found is None:  # deleted since the listing: the project's data is being deleted
                return _Head(pointer, None, 0, None, None)
            return _Head(pointer, None, newest, None, (keys.history(newest), found))
        # Normal case: one probe for serial + 1 (absent). More only after a writer died mid-write.
        head = _Head(pointer, base.serial, base.serial, base, None)
        while (blob := self.backend.get(keys.history(head.serial + 1))) is not None:
            head.serial += 1
            try:
                head.current = parse_state(blob.data, project_id=keys.project_id, serial=head.serial)
                head.damage = None
            except Damaged as exc:
                head.current, head.damage = None, (keys.history(head.serial), str(exc))
        return head

    def _read(self, keys: ProjectKeys) -> StateFile | None:
        head = self._head(keys)
        if head.damage is not None:
            raise corrupted(keys.project_id, *head.damage, self._newest_valid(keys, head.serial))
        if head.current is not None and head.pointer_serial != head.current.serial:
            self._repair_pointer(keys, head.pointer, head.current)
        return head.current

    def _repair_pointer(self, keys: ProjectKeys, pointer: Blob | None, current: StateFile) -> None:
        """Move state.json up to the rolled-forward version; losing that race to anyone is fine."""
        try:
            self._swap_pointer(keys, pointer, current)
        except PreconditionFailed:
            return
        except StateUnavailable as exc:  # e.g. read-only credentials: reading must still work
            log.info("state_roll_forward_not_saved", project_id=keys.project_id, error=exc.message)
            return
        log.info("state_rolled_forward", project_id=keys.project_id, serial=current.serial)

    def _swap_pointer(
        self, keys: ProjectKeys, pointer: Blob | None, state: StateFile, data: bytes | None = None
    ) -> str:
        data = encode(state.to_document()) if data is None else data
        if pointer is None:
            return self.backend.put(keys.state, data, if_none_match=True)
        return self.backend.put(keys.state, data, if_match=pointer.etag)

    def _write_head(self, keys: ProjectKeys) -> tuple[Blob | None, int, str | None]:
        """state.json as read, the newest committed serial, and its lineage (None if unknown)."""
        pointer = self.backend.get(keys.state)
        known = self._written.get(keys.state)
        # Still the version we wrote: its serial and lineage are known without parsing it. The
        # probe for serial + 1 is the same one _head makes (a writer that died mid-write).
        if (
            pointer is not None
            and known is not None
            and known[0] == pointer.etag
            and self.backend.get(keys.history(known[1] + 1)) is None
        ):
            return pointer, known[1], known[2]
        head = self._head(keys)
        reference = head.current or self._newest_valid_state(keys, head.serial)
        return head.pointer, head.serial, reference.lineage if reference is not None else None

    def _write(self, keys: ProjectKeys, state: StateFile, document: dict[str, object] | None = None) -> StateFile:
        pointer, serial, lineage = self._write_head(keys)
        if state.serial != serial + 1:
            raise conflict(keys.project_id, serial, state)
        if serial > 0 and lineage is not None and state.lineage != lineage:
            raise conflict(keys.project_id, serial, state, f" with lineage {lineage}")
        # History and state.json hold the same bytes: encode once.
        data = encode(state.to_document() if document is None else document)
        try:
            # The race arbiter: of two writers from the same serial only one creates this key.
            self.backend.put(keys.history(state.serial), data, if_none_match=True)
        except PreconditionFailed:
            raise conflict(keys.project_id, state.serial, state, " (another writer got there first)") from None
        self._advance_pointer(keys, pointer, state, data)
        return state

    def _advance_pointer(self, keys: ProjectKeys, pointer: Blob | None, state: StateFile, data: bytes) -> None:
        """Point state.json at ``state``, which is already committed in history.

        The swap can lose only to someone moving state.json to this version or a newer one (a reader
        rolling forward, the next writer): then there is nothing left to do. Never move it backwards.
        """
        for _ in range(_POINTER_ATTEMPTS):
            try:
                etag = self._swap_pointer(keys, pointer, state, data)
                self._written[keys.state] = (etag, state.serial, state.lineage)
                return
            except PreconditionFailed:
                pointer = self.backend.get(keys.state)
                if pointer is not None:
                    try:
                        if parse_state(pointer.data, project_id=keys.project_id).serial >= state.serial:
                            return
                    except Damaged:
                        pass  # replace the damaged pointer with our valid, newer version
        # Committed all the same: readers roll forward from history.
        log.warning("state_pointer_not_advanced", project_id=keys.project_id, serial=state.serial)

    # ----------------------------------------------------------------- history

    def _history_serials(self, keys: ProjectKeys) -> list[int]:
        serials = (keys.serial_of(key) for key in self.backend.list(keys.history_prefix))
        return sorted((s for s in serials if s is not None), reverse=True)

    def _version_or_damage(self, keys: ProjectKeys, serial: int) -> StateFile | str | None:
        """The version, the reason it is damaged, or None if absent."""
        blob = self.backend.get(keys.history(serial))
        if blob is None:
            return None
        try:
            return parse_state(blob.data, project_id=keys.project_id, serial=serial)
        except Damaged as exc:
            return str(exc)

    def _newest_valid_state(self, keys: ProjectKeys, at_most: int | None = None) -> StateFile | None:
        for serial in self._history_serials(keys):
            if at_most is not None and serial > at_most:
                continue
            found = self._version_or_damage(keys, serial)
            if isinstance(found, StateFile):
                return found
        return None

    def _newest_valid(self, keys: ProjectKeys, at_most: int | None = None) -> int | None:
        found = self._newest_valid_state(keys, at_most)
        return found.serial if found is not None else None

    def _history(self, keys: ProjectKeys) -> list[HistoryEntry]:
        entries: list[HistoryEntry] = []
        for serial in self._history_serials(keys):
            blob = self.backend.get(keys.history(serial))
            if blob is None:  # deleted between listing and reading (project being deleted)
                continue
            try:
                entries.append(history_entry(parse_state(blob.data, project_id=keys.project_id, serial=serial)))
            except Damaged as exc:
                entries.append(damaged_history_entry(serial, blob, str(exc)))
        return entries

    def _read_version(self, keys: ProjectKeys, serial: int) -> StateFile:
        found = self._version_or_damage(keys, serial) if serial >= 1 else None
        if found is None:
            raise NotFound(
                f"Project {keys.project_id!r} has no state version {serial}. Call get_state_history to list the versions.",
                details={"project_id": keys.project_id, "version": serial},
            )
        if isinstance(found, str):
            raise corrupted(keys.project_id, keys.history(serial), found, self._newest_valid(keys))
        return found

    # ----------------------------------------------------------------- lease lock

    def _acquire(self, keys: ProjectKeys, owner: str, operation: str, lease_seconds: float) -> LockInfo:
        now = self._clock()
        mine = LockInfo(
            lock_id=uuid.uuid4().hex,
            owner=owner,
            operation=operation,
            acquired_at=now,
            expires_at=now + timedelta(seconds=lease_seconds),
        )
        data = encode(mine.model_dump(mode="json"))
        blob = self.backend.get(keys.lock)
        if blob is None:
            try:
                etag = self.backend.put(keys.lock, data, if_none_match=True)
            except PreconditionFailed:
                raise locked(keys.project_id, self._current_lock(keys)) from None
            return mine.model_copy(update={"etag": etag})
        held = _parse_lock(blob)
        if held is not None and held.expires_at > now:
            raise locked(keys.project_id, held)
        try:
            # Only one of several takers of the same expired lease can replace this exact version.
            etag = self.backend.put(keys.lock, data, if_match=blob.etag)
        except PreconditionFailed:
            raise locked(keys.project_id, self._current_lock(keys)) from None
        log.warning(
            "state_lock_takeover",
            project_id=keys.project_id,
            previous_owner=held.owner if held else None,
            previous_operation=held.operation if held else None,
            previous_expires_at=isoformat(held.expires_at) if held else None,
            owner=owner,
            operation=operation,
        )
        return mine.model_copy(update={"etag": etag})

    def _current_lock(self, keys: ProjectKeys) -> LockInfo | None:
        blob = self.backend.get(keys.lock)
        return _parse_lock(blob) if blob is not None else None

    def _on_our_lock(self, keys: ProjectKeys, lock: LockInfo, action: Callable[[str], T]) -> tuple[bool, T | None]:
        """Run a conditional ``action(etag)`` on our version of the lock.

        Tries the etag remembered on ``lock`` first. If that version is gone but the lock still
        carries our ``lock_id`` (a renewal through another copy of the LockInfo, or a LockInfo read
        back without its etag), retries once with the current etag. Returns (False, None) when the
        lock is not ours any more.
        """
        etag = lock.etag
        for _ in range(2):
            if etag is not None:
                try:
                    return True, action(etag)
                except PreconditionFailed:
                    pass
            held = self._current_lock(keys)
            if held is None or held.lock_id != lock.lock_id or held.etag == etag:
                break
            etag = held.etag
        return False, None

    def _renew(self, keys: ProjectKeys, lock: LockInfo, lease_seconds: float) -> LockInfo:
        renewed = lock.model_copy(update={"expires_at": self._clock() + timedelta(seconds=lease_seconds)})
        data = encode(renewed.model_dump(mode="json"))
        ours, new_etag = self._on_our_lock(keys, lock, lambda etag: self.backend.put(keys.lock, data, if_match=etag))
        if not ours:
            raise locked(keys.project_id, self._current_lock(keys))
        return renewed.model_copy(update={"etag": new_etag})

    def _release(self, keys: ProjectKeys, lock: LockInfo) -> None:
        ours, _ = self._on_our_lock(keys, lock, lambda etag: self.backend.delete(keys.lock, if_match=etag))
        if not ours:
            # Already gone, or taken over after our lease expired: someone else's lock now, leave it be.
            log.info("state_lock_release_skipped", project_id=keys.project_id, lock_id=lock.lock_id)

    # ----------------------------------------------------------------- deletion

    def _delete_data(self, keys: ProjectKeys, owner: StateOwner, lock: LockInfo | None) -> DataDeletion:
        report = DataDeletion()
        # History first, state.json after: a deletion cut short leaves a readable state, never a pointer to nothing.
        for key in sorted(self.backend.list(keys.history_prefix)):
            serial = keys.serial_of(key)
            if serial is None:
                report.left[key] = "not a state version (stray file)"
                continue
            self._delete_state_key(keys, key, serial, owner, report)
        self._delete_state_key(keys, keys.state, None, owner, report)
        self._delete_journal(keys, owner, report)
        if lock is not None:
            ours, _ = self._on_our_lock(keys, lock, lambda etag: self.backend.delete(keys.lock, if_match=etag))
            if ours:
                report.deleted.append(keys.lock)
        if keys.lock not in report.deleted and self.backend.get(keys.lock) is not None:
            report.left[keys.lock] = "a lock this deletion does not hold"
        self.backend.prune(keys.history_prefix)
        self.backend.prune(keys.root)
        self._written.pop(keys.state, None)
        if report.left:
            log.warning("state_keys_left", project_id=keys.project_id, left=report.left)
        return report

    def _delete_state_key(
        self, keys: ProjectKeys, key: str, serial: int | None, owner: StateOwner, report: DataDeletion
    ) -> None:
        blob = self.backend.get(key)
        if blob is None:
            return
        try:
            state = parse_state(blob.data, project_id=keys.project_id, serial=serial)
        except Damaged as exc:
            report.left[key] = f"unreadable ({exc}), so not provably this project's"
            return
        if not owner.owns(state.metadata.incarnation):
            report.left[key] = f"written by another incarnation ({state.metadata.incarnation or 'unmarked'})"
            return
        self._delete_unchanged(key, blob, report)

    def _delete_journal(self, keys: ProjectKeys, owner: StateOwner, report: DataDeletion) -> None:
        blob = self.backend.get(keys.journal)
        if blob is None:
            return
        try:
            journal = Journal.model_validate_json(blob.data)
        except ValidationError:
            report.left[keys.journal] = "unreadable, so not provably this project's"
            return
        if journal.project_id != keys.project_id or not owner.owns(journal.incarnation):
            report.left[keys.journal] = f"written by another incarnation ({journal.incarnation or 'unmarked'})"
        elif journal.entries:
            report.left[keys.journal] = f"{len(journal.entries)} requests still in flight"
        else:
            self._delete_unchanged(keys.journal, blob, report)

    def _delete_unchanged(self, key: str, blob: Blob, report: DataDeletion) -> None:
        try:
            self.backend.delete(key, if_match=blob.etag)
        except PreconditionFailed:
            report.left[key] = "changed while the project was being deleted"
            return
        report.deleted.append(key)

    # ----------------------------------------------------------------- journal

    def _read_journal(self, keys: ProjectKeys) -> Journal:
        blob = self.backend.get(keys.journal)
        if blob is None:
            return Journal(project_id=keys.project_id)
        try:
            journal = Journal.model_validate_json(blob.data)
        except ValidationError:
            journal = None
        if journal is None or journal.project_id != keys.project_id:
            # The journal is not versioned: there is no history version to point at.
            raise StateCorrupted(
                f"The journal of project {keys.project_id!r} ({keys.journal}) is unreadable. Check the resources "
                "of recent executions in AWS, then delete the file.",
                details={"project_id": keys.project_id, "key": keys.journal, "newest_valid_version": None},
            )
        return journal


def _check_lease(lease_seconds: float) -> None:
    if not lease_seconds > 0:
        raise ValidationFailed(
            f"lease_seconds must be positive, got {lease_seconds}. Pass a lease of at least a few seconds.",
            details={"field": "lease_seconds"},
        )
