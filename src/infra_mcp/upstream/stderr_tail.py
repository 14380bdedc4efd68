"""Keep the last words a stdio upstream wrote to stderr, for the error that says why it would not start.

A real upstream explains a failed start only on stderr ("Error retrieving the service reference
document ..."), while the MCP client sees nothing but a closed connection. The process's stderr goes
to a pipe; a reader thread forwards every byte to our stderr (operators still see the upstream's
log) and keeps a bounded tail.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import TextIO

import anyio.to_thread

DEFAULT_LIMIT = 4000


class StderrTail:
    """The bounded tail of one upstream process's stderr at a time (each (re)start resets it).

    Args:
        limit: Most characters kept.
        forward: Where every byte is copied to as well (default: our stderr at the time of the start).
    """

    def __init__(self, limit: int = DEFAULT_LIMIT, forward: TextIO | None = None) -> None:
        self._limit = limit
        self._forward = forward
        self._lock = threading.Lock()
        self._buffer = bytearray()
        self._writer: TextIO | None = None
        self._reader: threading.Thread | None = None

    def open(self) -> TextIO:
        """A fresh pipe for the next process's stderr; returns the end to give the process."""
        self.spawned()
        read_fd, write_fd = os.pipe()
        with self._lock:
            self._buffer = bytearray()
        self._writer = os.fdopen(write_fd, "w")
        forward = self._forward or sys.stderr
        self._reader = threading.Thread(
            target=self._read, args=(read_fd, forward), name="infra-mcp-upstream-stderr", daemon=True
        )
        self._reader.start()
        return self._writer

    def spawned(self) -> None:
        """Close our copy of the pipe's write end (the process has its own), so its exit ends the reader."""
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(OSError):
                writer.close()

    async def settled(self, timeout: float = 1.0) -> str:  # noqa: ASYNC109 - a bounded wait for the pipe to drain
        """The tail, after waiting up to ``timeout`` for the process's last bytes to arrive."""
        self.spawned()
        reader = self._reader
        if reader is not None:
            await anyio.to_thread.run_sync(reader.join, timeout)
        return self.text()

    def text(self) -> str:
        with self._lock:
            return self._buffer.decode("utf-8", "replace")[-self._limit :]

    def _read(self, fd: int, forward: TextIO) -> None:
        try:
            while chunk := os.read(fd, 65536):
                with self._lock:
                    self._buffer += chunk
                    # Bytes, not characters: keep a little more than the limit so decoding never starves it.
                    del self._buffer[: -self._limit * 4]
                with contextlib.suppress(ValueError, OSError):  # our stderr may be closed (tests, shutdown)
                    forward.write(chunk.decode("utf-8", "replace"))
                    forward.flush()
        finally:
            os.close(fd)


def last_line(text: str, limit: int = 300) -> str:
    """The last non-blank line of ``text``, cut to ``limit`` characters."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:limit] if lines else ""
