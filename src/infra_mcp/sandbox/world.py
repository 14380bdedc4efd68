"""Where the simulated cloud lives: a JSON document, in memory or in files shared by processes.

The file store lets several sandbox processes (a stdio MCP server per infra-mcp server, an HTTP
server for boto3, a restart tomorrow) see one world. On disk it is a snapshot, ``cloud.json``,
plus an append-only log of the rows changed since, ``cloud.json.log`` (one JSON line per
transaction): rewriting the whole world on every mutation cost milliseconds per call once it
held a few hundred resources, all of it under the lock that serialises every call.

* every transaction holds an exclusive ``fcntl.flock`` on a sidecar lock file, so read-modify-write
  cycles never interleave across processes (or threads: each transaction opens its own descriptor);
* a transaction that changed something appends one line naming the rows it changed (requests,
  resources, the pending list) with their new values, *before* it returns: an answer is never
  given for a change that is not in the files. (Neither is fsynced: the sandbox survives the
  kill of any process, not a power cut.)
* a process keeps the world in memory and, at the start of each transaction, applies only the log
  lines appended since its last look (by another process);
* when the log outgrows the snapshot, the world is compacted: a new *generation* (a random token)
  is announced in the lock file, the snapshot is written to a temporary file and ``os.replace``-d,
  and the log is emptied. A process that sees another generation re-reads both files. A crash
  part-way leaves a snapshot and a log whose lines are all either still needed or already in the
  snapshot: every line sets rows to values, so replaying it again changes nothing;
* a line cut short by a crash mid-append belongs to a transaction that never answered; it is
  dropped (the log is truncated back to its last whole line);
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
# The log is compacted once it is larger than this and than the snapshot.
_MIN_COMPACT_BYTES = 256 * 1024

ResourceKey = tuple[str, str, str]  # (region, type name, identifier)


def empty_world() -> dict[str, Any]:
    """A cloud with nothing in it."""
    return {"format": WORLD_FORMAT, "sandbox": True, "resources": {}, "requests": {}, "pending": []}


class Transaction:
    """One exclusive look at the world.

    After changing :attr:`data`, name what changed (:meth:`changed_request`,
    :meth:`changed_resource`, :meth:`changed_pending`), or set :attr:`dirty` for anything else
    (the whole world is then written).
    """

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.requests: set[str] = set()
        self.resources: set[ResourceKey] = set()
        self.pending = False
        self.whole = False

    @property
    def dirty(self) -> bool:
        return self.whole or self.pending or bool(self.requests) or bool(self.resources)

    @dirty.setter
    def dirty(self, value: bool) -> None:
        self.whole = self.whole or value

    def changed_request(self, token: str) -> None:
        self.requests.add(token)

    def changed_resource(self, region: str, type_name: str, identifier: str) -> None:
        self.resources.add((region, type_name, identifier))

    def changed_pending(self) -> None:
        self.pending = True

    def delta(self) -> dict[str, Any]:
        """The changed rows with their values now (None: deleted), as one log line."""
        requests = self.data["requests"]
        regions = self.data["resources"]
        line: dict[str, Any] = {
            "requests": {token: requests.get(token) for token in sorted(self.requests)},
            "resources": [
                [region, type_name, identifier, regions.get(region, {}).get(type_name, {}).get(identifier)]
                for region, type_name, identifier in sorted(self.resources)
            ],
        }
        if self.pending:
            line["pending"] = self.data["pending"]
        return line


def apply_delta(data: dict[str, Any], line: dict[str, Any]) -> None:
    """Replay one log line onto ``data`` (idempotent: it sets rows to values)."""
    requests = data["requests"]
    for token, request in line.get("requests", {}).items():
        if request is None:
            requests.pop(token, None)
        else:
            requests[token] = request
    regions = data["resources"]
    for region, type_name, identifier, resource in line.get("resources", []):
        if resource is None:
            regions.get(region, {}).get(type_name, {}).pop(identifier, None)
        else:
            regions.setdefault(region, {}).setdefault(type_name, {})[identifier] = resource
    if "pending" in line:
        data["pending"] = line["pending"]


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
    """The world in a snapshot file and its log, shared safely by every process that opens the same path.

    Args:
        path: The snapshot, e.g. ``<data_dir>/sandbox/cloud.json`` (the log is ``<path>.log``,
            the lock ``<path>.lock``); its folder is created.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self.log_path = path.with_name(path.name + ".log")
        self._cache: dict[str, Any] | None = None
        self._generation: str | None = None
        self._offset = 0  # bytes of the log already applied to the cache
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
                    self._cache, self._offset = self._load(), 0
                    self._generation = generation
                self._catch_up()
                # No defensive copy (it would dominate the cost of a poll): if the operation
                # raises, the cache is dropped and the next transaction re-reads the files.
                txn = Transaction(self._cache)
                try:
                    yield txn
                except BaseException:
                    self._cache = None
                    raise
                if txn.dirty:
                    self._commit(fd, txn)
            finally:
                os.close(fd)  # closing the descriptor releases the flock

    def _commit(self, lock_fd: int, txn: Transaction) -> None:
        try:
            if txn.whole or not self.path.exists() or self._offset > max(_MIN_COMPACT_BYTES, self._snapshot_size()):
                self._compact(lock_fd, txn.data)
            else:
                self._append(txn.delta())
        except BaseException:
            self._cache = None
            raise

    def _append(self, line: dict[str, Any]) -> None:
        # One write() of one whole line, O_APPEND: a crash leaves at most a cut-off last line.
        data = (json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            written = os.write(fd, data)
        finally:
            os.close(fd)
        if written != len(data):  # pragma: no cover - a full disk; the next look truncates it
            raise OSError(f"short write to {self.log_path}")
        self._offset += written

    def _compact(self, lock_fd: int, data: dict[str, Any]) -> None:
        # Announce the new generation before replacing the snapshot: a crash in between only costs
        # other processes one needless reload, never a stale world. Generations all have the
        # same length, so overwriting in place needs no truncate.
        generation = uuid.uuid4().hex
        os.pwrite(lock_fd, generation.encode("ascii"), 0)
        self._write(data)
        # Everything the log held is in the snapshot now (replaying it again would change nothing).
        with contextlib.suppress(FileNotFoundError):
            os.truncate(self.log_path, 0)
        self._generation, self._offset = generation, 0

    def _snapshot_size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def _catch_up(self) -> None:
        """Apply the log lines appended since this process last looked (by other processes)."""
        assert self._cache is not None
        try:
            size = os.stat(self.log_path).st_size
        except FileNotFoundError:
            size = 0
        if size == self._offset:
            return
        if size < self._offset:
            # Emptied without a new generation (cannot happen through this class): start over.
            self._cache, self._offset = self._load(), 0
        with open(self.log_path, "rb") as handle:
            handle.seek(self._offset)
            tail = handle.read()
        end = tail.rfind(b"\n") + 1
        good = 0
        for raw in tail[:end].splitlines(keepends=True):
            try:
                line = json.loads(raw)
                if not isinstance(line, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                _log.error("sandbox_world_log_unreadable", path=str(self.log_path), error=str(exc))
                break
            apply_delta(self._cache, line)
            good += len(raw)
        if good < len(tail):
            # A line cut off by a crash mid-append (its transaction never answered), or damage:
            # drop it, so the next append starts on a line of its own.
            os.truncate(self.log_path, self._offset + good)
        self._offset += good

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
            with contextlib.suppress(FileNotFoundError):
                os.replace(self.log_path, aside.with_name(aside.name + ".log"))
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
