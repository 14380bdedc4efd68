"""Where the simulated cloud lives: a JSON document, in memory or in a file shared by processes.

The file store lets several sandbox processes (a stdio MCP server per infra-mcp server, an HTTP
server for boto3, a restart tomorrow) see one world:

* every transaction holds an exclusive ``fcntl.flock`` on a sidecar lock file, so read-modify-write
  cycles never interleave across processes (or threads: each transaction opens its own descriptor);
* the lock file holds the *generation* (a random token) of the last write; a process reloads the
  world only when the generation moved, so polling does not re-parse the file each time;
* a change is written to a temporary file and ``os.replace``-d over the world, so a reader never
  sees half a document and a crash mid-write leaves the previous world intact;
* a transaction that changed nothing writes nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import structlog

WORLD_FORMAT = 1
_log = structlog.get_logger("infra_mcp.sandbox.world")


def empty_world() -> dict[str, Any]:
    """A cloud with nothing in it."""
    return {"format": WORLD_FORMAT, "sandbox": True, "resources": {}, "requests": {}, "pending": []}


class Transaction:
    """One exclusive look at the world; set :attr:`dirty` after changing :attr:`data`."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.dirty = False


class WorldStore(Protocol):
    """Exclusive access to the world document."""

    def transaction(self) -> contextlib.AbstractContextManager[Transaction]: ...


class MemoryWorldStore:
    """The world in this process only (unit tests, throw-away runs)."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self._data = data if data is not None else empty_world()
        self._lock = threading.RLock()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        # No copy: operations validate everything before they change anything, and the only
        # change made before a possible refusal (settling finished requests) is legitimate anyway.
        with self._lock:
            yield Transaction(self._data)


class FileWorldStore:
    """The world in a JSON file, shared safely by every process that opens the same path.

    Args:
        path: The world file, e.g. ``<data_dir>/sandbox/cloud.json``; its folder is created.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self._cache: dict[str, Any] | None = None
        self._generation: str | None = None
        self._thread_lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._thread_lock:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                generation = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or None
                if self._cache is None or generation != self._generation:
                    self._cache = self._load()
                    self._generation = generation
                # No defensive copy (it would dominate the cost of a poll): if the operation
                # raises, the cache is dropped and the next transaction re-reads the file.
                txn = Transaction(self._cache)
                try:
                    yield txn
                except BaseException:
                    self._cache = None
                    raise
                if txn.dirty:
                    self._commit(fd, txn.data)
            finally:
                os.close(fd)  # closing the descriptor releases the flock

    def _commit(self, lock_fd: int, data: dict[str, Any]) -> None:
        # Announce the new generation before replacing the file: a crash in between only costs
        # other processes one needless reload, never a stale world. Generations all have the
        # same length, so overwriting in place needs no truncate.
        generation = uuid.uuid4().hex
        os.pwrite(lock_fd, generation.encode("ascii"), 0)
        try:
            self._write(data)
        except BaseException:
            self._cache = None
            raise
        self._generation = generation

    def _load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return empty_world()
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("format") != WORLD_FORMAT:
                raise ValueError("not a sandbox world document")
        except ValueError as exc:
            # A sandbox that refused to start would take every default install down with it;
            # keep the unreadable file for inspection and start an empty world, loudly.
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            _log.error("sandbox_world_unreadable", path=str(self.path), moved_to=str(aside), error=str(exc))
            return empty_world()
        return data

    def _write(self, data: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
        try:
            # json.dumps, not json.dump: only the one-shot encoder is the fast C one.
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
