"""Private file modes for what infra-mcp keeps on disk (issue 9, item 6).

The data dir is ``0700``; the database (with its ``-wal``/``-shm``) and key files are ``0600``.
Files are created with those modes, and on open a looser mode left by an older version, a
restore or a careless ``chmod`` is tightened, with a warning so the operator learns about it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) if missing, and make ``path`` itself ``0700``.

    Parents created on the way get the default mode: only the leaf is ours to restrict.
    """
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    tighten(path, PRIVATE_DIR)


def tighten(path: Path, mode: int) -> None:
    """Remove any permission bit of ``path`` beyond ``mode``; log a warning when one was removed.

    A missing file is left alone (nothing to protect yet). A file owned by another user is not
    changed (we could not, and a shared folder such as ``/tmp`` must never be chmod-ed): the
    warning says so, and the operator decides.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    current = stat.S_IMODE(info.st_mode)
    if current & ~mode == 0:
        return
    if info.st_uid != os.getuid():
        log.warning("file_mode_too_open_not_ours", path=str(path), mode=oct(current), wanted=oct(mode))
        return
    os.chmod(path, current & mode)
    log.warning("file_mode_tightened", path=str(path), was=oct(current), now=oct(current & mode))


def create_private_file(path: Path) -> None:
    """Create an empty ``0600`` file if ``path`` does not exist (SQLite then keeps using that mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return
    os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make a new or renamed directory entry durable, not just the file's bytes."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
