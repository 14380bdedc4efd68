"""The real ``awslabs.aws-api-mcp-server``, installed on demand in its own venv and run offline
against ``infra-mcp sandbox --http``.

It is built on mcp 1.x and infra-mcp on mcp 2.x, so the two cannot share a venv: the first test
that needs it creates ``.venv-upstream/`` at the repository root (about a minute, from the package
registry) and later runs reuse it. ``INFRA_MCP_TEST_UPSTREAM_PYTHON`` names an interpreter that
already has it instead.

Offline start: the server downloads AWS's service reference at start-up and refuses to start
without it. ``launch.py`` replaces that download with an empty map before calling its ``main()``;
operations its bundled metadata does not know are then treated as mutations, which is the safe side.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

UPSTREAM_PIN = "awslabs.aws-api-mcp-server==1.5.6"
ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = Path(__file__).with_name("launch.py")
_VENV = ROOT / ".venv-upstream"
_MARKER = _VENV / "infra-mcp-pin.txt"


def upstream_python() -> str:
    """An interpreter with the pinned real upstream installed (installing it on first use).

    Raises:
        RuntimeError: The install failed (the message has pip's last lines).
    """
    configured = os.environ.get("INFRA_MCP_TEST_UPSTREAM_PYTHON")
    if configured:
        return configured
    python = _VENV / "bin" / "python"
    _VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(ROOT / ".venv-upstream.lock", "w") as lock:
        # Two pytest processes (or a developer and CI in one clone) must not install into one venv at once.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _MARKER.exists() and _MARKER.read_text() == UPSTREAM_PIN and python.exists():
            return str(python)
        steps = [
            [sys.executable, "-m", "venv", "--clear", str(_VENV)],
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", UPSTREAM_PIN],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, check=False, timeout=900)
            if done.returncode != 0:
                raise RuntimeError(f"installing {UPSTREAM_PIN} failed: {(done.stderr or done.stdout)[-2000:]}")
        _MARKER.write_text(UPSTREAM_PIN)
    return str(python)


def upstream_env(endpoint: str, **extra: str) -> dict[str, str]:
    """The real upstream's environment pointing every AWS call it makes at the sandbox ``endpoint``."""
    env = {
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "sandbox",
        "AWS_SECRET_ACCESS_KEY": "sandbox",
        "AWS_API_MCP_SUPPRESS_DEPRECATION_WARNING": "true",
        "AWS_API_MCP_TELEMETRY": "false",
        "FASTMCP_LOG_LEVEL": "WARNING",
    }
    for service in ("CLOUDCONTROL", "STS", "EC2", "S3"):
        env[f"AWS_ENDPOINT_URL_{service}"] = endpoint
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def sandbox_http(data_dir: Path, *args: str, port: int | None = None) -> Iterator[str]:
    """``infra-mcp sandbox --http`` in a subprocess over ``data_dir``'s world; yields its endpoint URL."""
    port = port or free_port()
    env = {**os.environ, "INFRA_MCP_DATA_DIR": str(data_dir), "INFRA_MCP_LOG_LEVEL": "WARNING"}
    process = subprocess.Popen(
        [sys.executable, "-m", "infra_mcp.sandbox", "--http", f"127.0.0.1:{port}", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"infra-mcp sandbox --http did not start (exit {process.poll()})")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
