"""Is the SQLite file safe to start on? The start-up check behind ``SqliteProjectStore.open``.

A database that is missing or empty while its data dir shows it was used before (project state,
the secret key, SQLite's journal files), or one that is truncated or corrupt, must stop start-up:
starting on it would look like a brand-new installation, and the first user to create a project
named like an old one would be handed that project's state and resources (issue 9, item 3).

Which error, and why:

- ``STATE_001`` (:class:`StateCorrupted`) when the content cannot be trusted: empty where it must
  not be, truncated, not a database, failing ``PRAGMA quick_check``/``integrity_check``. Like a
  corrupted state file, the remedy is to restore a known-good copy, so the message says how.
- ``STATE_004`` (:class:`StateUnavailable`) when the content may be fine but this process cannot
  use it: unreadable, locked, or written by a newer infra-mcp (upgrade, do not restore).

Everything here is synchronous ``sqlite3`` on purpose: it runs before the server's own
connection exists (in a worker thread), and the ``infra-mcp db`` commands reuse it as is.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from infra_mcp.errors import InfraError, StateCorrupted, StateUnavailable

SQLITE_MAGIC = b"SQLite format 3\x00"
_HEADER_BYTES = 100
KEY_NAME = "secret.key"  # the server key's default name in the data dir (services/keys.py)
_TABLES = ("projects", "members", "plans", "audit")
# SQLite result codes (low byte of the extended code) that mean "the bytes are wrong".
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_MAX_FINDINGS = 10

RESTORE_HINT = (
    "Restore it from a backup with `infra-mcp db restore BACKUP` (backups are made with "
    "`infra-mcp db backup PATH`); the damaged file is kept aside. `infra-mcp db check` repeats this check."
)


@dataclass(frozen=True)
class DatabaseReport:
    """What a passed check found.

    Attributes:
        path: The database file.
        exists: False for a brand-new data dir (the file is created on first start).
        schema_version: ``PRAGMA user_version`` (0 for a new file).
        counts: Rows per table, for the operator's eye (``db check``).
    """

    path: Path
    exists: bool
    schema_version: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def sidecars(path: Path) -> list[Path]:
    """SQLite's companion files of ``path``: the WAL, its shared-memory index, the rollback journal."""
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


def open_lock_path(path: Path) -> Path:
    """The lock file every open store holds shared, and ``infra-mcp db restore`` takes exclusive."""
    return path.with_name(path.name + ".lock")


def prior_use_signs(path: Path) -> list[str]:
    """What in the data dir of ``path`` shows that an infra-mcp database was used there before.

    Only infra-mcp's own traces count, so a brand-new or unrelated folder starts fine: SQLite's
    journal files beside the database, the server key, and project state in the default
    ``state`` folder (a ``state.json`` or a ``history`` folder under a project folder).
    """
    data_dir = path.parent
    signs = [p.name for p in sidecars(path) if p.exists()]
    if (data_dir / KEY_NAME).exists():
        signs.append(KEY_NAME)
    state_root = data_dir / "state"
    if state_root.is_dir():
        projects = sorted(
            p.name
            for p in state_root.iterdir()
            if p.is_dir() and ((p / "state.json").exists() or (p / "history").is_dir())
        )
        if projects:
            shown = ", ".join(projects[:5]) + (", ..." if len(projects) > 5 else "")
            signs.append(f"state of {len(projects)} project(s) in state/ ({shown})")
    return signs


def check_database(path: Path, *, known_version: int, full: bool = False) -> DatabaseReport:
    """Check that ``path`` is safe to open: a new database, or an intact infra-mcp database.

    Args:
        path: The database file.
        known_version: The newest schema version this infra-mcp knows.
        full: ``PRAGMA integrity_check`` (every index too) instead of the faster ``quick_check``.

    Raises:
        StateCorrupted: STATE_001, empty where it must not be, truncated, not a database, or corrupt.
        StateUnavailable: STATE_004, unreadable or locked, or from a newer infra-mcp.
    """
    signs = prior_use_signs(path)  # before opening: opening creates the -wal and -shm
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = None
        # The server key is created just before the database at the first start, so beside a
        # missing file it proves nothing; beside an empty one it does (the file came after it).
        signs = [sign for sign in signs if sign != KEY_NAME]
    except OSError as exc:
        raise _unavailable(path, str(exc)) from exc
    if not size:
        if signs:
            what = "missing" if size is None else "empty (zero bytes)"
            raise _corrupted(
                path,
                "empty_but_used",
                f"is {what}, but its folder was used before ({'; '.join(signs)}). Starting on an empty "
                "database would hand the old projects' state to whoever re-creates a project of the same name",
                signs=signs,
                extra="If you really mean to start over, move the data dir's state folder, secret.key and the "
                "database's -wal/-shm files aside first.",
            )
        return DatabaseReport(path=path, exists=size is not None)
    _check_header(path, size)
    return _check_content(path, signs, known_version=known_version, full=full)


def _check_header(path: Path, size: int) -> None:
    try:
        with path.open("rb") as handle:
            header = handle.read(_HEADER_BYTES)
    except OSError as exc:
        raise _unavailable(path, str(exc)) from exc
    if len(header) < _HEADER_BYTES or not header.startswith(SQLITE_MAGIC):
        raise _corrupted(path, "not_a_database", "does not start with an SQLite header (overwritten or truncated)")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The page count in the header is valid only when written by the same change (SQLite's rule).
    counted = header[92:96] == header[24:28] and pages > 0
    if page_size < 512 or page_size & (page_size - 1) or size % page_size or (counted and size < pages * page_size):
        raise _corrupted(
            path,
            "truncated",
            f"is truncated: {size} bytes, but its header says {pages} pages of {page_size} bytes",
        )


def _check_content(path: Path, signs: list[str], *, known_version: int, full: bool) -> DatabaseReport:
    try:
        # mode=rw: never create a file here; the caller decides whether a new one is wanted.
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=rw", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise _unavailable(path, str(exc)) from exc
    try:
        pragma = "integrity_check" if full else "quick_check"
        findings = [str(row[0]) for row in db.execute(f"PRAGMA {pragma}({_MAX_FINDINGS})")]
        if findings != ["ok"]:
            raise _corrupted(path, "integrity_check_failed", f"fails PRAGMA {pragma}", findings=findings)
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        tables = {str(r[0]) for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version > known_version:
            raise StateUnavailable(
                f"The project database {path} has schema version {version}, newer than this infra-mcp knows "
                f"({known_version}): it was written by a newer infra-mcp. Upgrade infra-mcp; do not restore.",
                details={"path": str(path), "problem": "newer_schema", "schema_version": version},
            )
        if version == 0 and not tables and signs:
            raise _corrupted(
                path,
                "empty_but_used",
                f"holds no tables, but its folder was used before ({'; '.join(signs)})",
                signs=signs,
            )
        missing = [t for t in _TABLES if t not in tables]
        if version > 0 and missing:
            raise _corrupted(path, "schema_damaged", f"lacks the tables {', '.join(missing)}")
        counts = {t: int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in _TABLES if t in tables}  # noqa: S608 - fixed names
    except sqlite3.Error as exc:
        if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF in _CORRUPT_CODES:
            raise _corrupted(path, "not_a_database", f"cannot be read as a database ({exc})") from exc
        raise _unavailable(path, str(exc)) from exc
    finally:
        db.close()
    return DatabaseReport(path=path, exists=True, schema_version=version, counts=counts)


def _corrupted(
    path: Path,
    problem: str,
    what: str,
    *,
    findings: list[str] | None = None,
    signs: list[str] | None = None,
    extra: str = "",
) -> InfraError:
    details: dict[str, object] = {"path": str(path), "problem": problem, "restore": "infra-mcp db restore BACKUP"}
    if findings:
        details["findings"] = findings
    if signs:
        details["prior_use"] = signs
    message = f"The project database {path} {what}. infra-mcp will not start on it. {RESTORE_HINT}"
    return StateCorrupted(f"{message} {extra}".strip(), details=details)


def _unavailable(path: Path, reason: str) -> InfraError:
    return StateUnavailable(
        f"Cannot read the project database at {path}: {reason}. Check INFRA_MCP_DATA_DIR points to a folder "
        "this user can read and write.",
        details={"path": str(path), "problem": "unreadable"},
    )
