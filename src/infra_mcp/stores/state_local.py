"""The state store in a local folder: the S3 key layout as files (DESIGN §3).

Writes are atomic (temp file in the same folder, fsync, then ``os.replace`` or ``os.link``), so a
reader never sees half a file. Create-only keys use ``os.link``, which fails if the name exists;
compare-and-swap holds an exclusive ``flock`` on the key's folder so two processes (or threads
with their own descriptors) cannot both pass the check.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from infra_mcp.domain.common import utcnow
from infra_mcp.errors import StateUnavailable
from infra_mcp.file_modes import fsync_dir
from infra_mcp.stores.versioned_state import Blob, Clock, PreconditionFailed, VersionedStateStore

_TEMP_PREFIX = ".tmp-"


class LocalBlobs:
    """:class:`~infra_mcp.stores.versioned_state.BlobBackend` over files under ``root``.

    The etag of a file is the SHA-256 of its bytes: every document we store differs (serial,
    timestamp, lock id), so equal content means the same version.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        # Keys come from validated project ids and fixed names; refuse anything else all the same.
        if any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"unsafe key {key!r}")
        path = self.root.joinpath(*parts)
        # A symlink planted inside the location (a project folder pointing at /etc) must not lead
        # reads, writes or deletions out of it.
        root = os.path.realpath(self.root)
        if os.path.commonpath([root, os.path.realpath(path)]) != root:
            raise StateUnavailable(
                f"The state key {key!r} leads out of the state folder {str(self.root)!r} through a symlink; "
                "nothing was read or written there. Remove the symlink.",
                details={"location": str(self.root), "key": key},
            )
        return path

    def get(self, key: str) -> Blob | None:
        with self._errors():
            try:
                with self._path(key).open("rb") as handle:
                    data = handle.read()
                    modified = datetime.fromtimestamp(os.fstat(handle.fileno()).st_mtime, UTC)
            except (FileNotFoundError, NotADirectoryError):
                return None
        return Blob(data=data, etag=_etag(data), modified=modified)

    def put(self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False) -> str:
        path = self._path(key)
        with self._errors():
            self._make_folders(path.parent)
            temp = self._temp_copy(path.parent, data)  # mkstemp: mode 0600, kept by link and replace
            try:
                if if_none_match:
                    try:
                        os.link(temp, path)  # atomic create-only: fails if the name exists
                    except FileExistsError:
                        raise PreconditionFailed(key) from None
                elif if_match is not None:
                    with _folder_lock(path.parent):
                        if self._current_etag(path) != if_match:
                            raise PreconditionFailed(key)
                        os.replace(temp, path)
                else:
                    os.replace(temp, path)
                fsync_dir(path.parent)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    temp.unlink()
        return _etag(data)

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        path = self._path(key)
        with self._errors():
            if not path.parent.is_dir():
                return
            with _folder_lock(path.parent):
                current = self._current_etag(path)
                if current is None:
                    return
                if if_match is not None and current != if_match:
                    raise PreconditionFailed(key)
                path.unlink()

    def list(self, prefix: str) -> list[str]:
        folder = self._path(prefix.rstrip("/"))
        with self._errors():
            if not folder.is_dir():
                return []
            return [f"{prefix}{child.name}" for child in folder.iterdir() if child.is_file()]

    def prune(self, prefix: str) -> None:
        with contextlib.suppress(OSError):
            os.rmdir(self._path(prefix.rstrip("/")))  # fails, as wanted, unless the folder is empty

    def _make_folders(self, folder: Path) -> None:
        """Create ``folder`` and any missing parent as 0700: state is readable by the server's user only."""
        missing: list[Path] = []
        while not folder.is_dir():
            missing.append(folder)
            if folder.parent == folder:
                break
            folder = folder.parent
        for path in reversed(missing):
            with contextlib.suppress(FileExistsError):
                path.mkdir(mode=0o700)

    def _current_etag(self, path: Path) -> str | None:
        try:
            return _etag(path.read_bytes())
        except FileNotFoundError:
            return None

    @staticmethod
    def _temp_copy(folder: Path, data: bytes) -> Path:
        fd, name = tempfile.mkstemp(dir=folder, prefix=_TEMP_PREFIX)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return Path(name)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Disk trouble becomes STATE_004 naming the folder; PreconditionFailed passes through."""
        try:
            yield
        except PreconditionFailed:
            raise
        except OSError as exc:
            raise StateUnavailable(
                f"The local state folder {str(self.root)!r} is not usable ({exc.strerror or type(exc).__name__}). "
                "Check that it is a writable folder, or point INFRA_MCP_STATE_LOCATION (or the project's "
                "state_location) somewhere else.",
                details={"location": str(self.root), "errno": exc.errno},
            ) from None


class LocalStateStore(VersionedStateStore):
    """Versioned project state in a local folder.

    Args:
        root: The folder holding one sub-folder per project (created on first write).
        clock: Current time, for lock leases (tests inject a fake clock).
    """

    def __init__(self, root: Path, *, clock: Clock = utcnow) -> None:
        super().__init__(LocalBlobs(Path(root)), clock=clock)
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStateStore({str(self.root)!r})"


def _etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    # flock on the folder itself: no lock file to add to the key layout or to clean up. flock
    # belongs to the open file description, so it excludes other processes and other threads alike.
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
