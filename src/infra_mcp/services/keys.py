"""The server key: 32 random bytes kept outside the database, in a file only its owner can read.

One key serves every keyed purpose (sealing secrets, plan and approval MACs, the audit chain,
secret digests); each purpose derives its own sub-key (``domain/integrity.derive``). It is created
with mode 0600 on first use, in a folder created 0700. Deployments that keep the key elsewhere
(a mounted secret, another disk) point ``INFRA_MCP_KEY_FILE`` at it.

Losing the key makes sealed secrets unreadable and every pending approval unverifiable: back it
up with the database (README, "Threat model and trust").
"""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

import structlog

from infra_mcp.errors import ValidationFailed
from infra_mcp.file_modes import PRIVATE_FILE, tighten

log = structlog.get_logger(__name__)

KEY_BYTES = 32
_lock = threading.Lock()


def load_or_create_key(path: Path) -> bytes:
    """Read the key at ``path``, creating it (0600) if it does not exist yet.

    Raises:
        ValidationFailed: VALIDATION_001, the file exists but is not a 32-byte key.
    """
    path = Path(path)
    with _lock:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = secrets.token_bytes(KEY_BYTES)
            try:
                # O_EXCL: if two processes race, one creates the key and the other reads it below.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(key)
                    handle.flush()
                    os.fsync(handle.fileno())
                return key
        # A key readable by others is made owner-only (and said so), not silently trusted.
        tighten(path, PRIVATE_FILE)
        key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise ValidationFailed(
            f"The server key file {str(path)!r} is not a {KEY_BYTES}-byte key; restore it from your backup "
            "(removing it makes sealed secrets unreadable and every approval unverifiable).",
            details={"key_path": str(path)},
        )
    return key


class ServerKey:
    """The server key, read lazily (once) from its file.

    Args:
        path: The key file; created on first use if missing.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._key: bytes | None = None

    def get(self) -> bytes:
        if self._key is None:
            self._key = load_or_create_key(self.path)
        return self._key
