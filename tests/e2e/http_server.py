"""``infra-mcp serve --http`` in a subprocess on 127.0.0.1, for the HTTP e2e tests (and the replicas')."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class HttpServer:
    """A running ``serve --http``: its base URL, process and stderr file."""

    base_url: str
    process: subprocess.Popen[bytes]
    stderr_path: Path

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then wait for the process to end by itself; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


def _wait_listening(port: int, process: subprocess.Popen[bytes], stderr: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve --http exited with {process.returncode}: {stderr.read_text()[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise AssertionError(f"serve --http did not listen within {timeout} s: {stderr.read_text()[-3000:]}")


@contextlib.contextmanager
def http_server(
    data_dir: Path, *, user: str = "alice", host: str = "127.0.0.1", port: int | None = None, **env: str
) -> Iterator[HttpServer]:
    """Start ``infra-mcp serve --http host:port`` over ``data_dir``; stop it (SIGTERM, then SIGKILL) after."""
    port = port or free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("INFRA_MCP_")}
    base.update({"INFRA_MCP_DATA_DIR": str(data_dir), "INFRA_MCP_USER": user, "INFRA_MCP_LOG_LEVEL": "INFO"})
    base.update(env)
    data_dir.mkdir(parents=True, exist_ok=True)
    stderr_path = data_dir.parent / f"serve-http-{port}.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "infra_mcp", "serve", "--http", f"{host}:{port}"],
            env=base,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    server = HttpServer(base_url=f"http://{host}:{port}", process=process, stderr_path=stderr_path)
    try:
        _wait_listening(port, process, stderr_path)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
