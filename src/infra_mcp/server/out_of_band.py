"""The command a person runs to approve a plan in a terminal, written to work from anywhere.

The server names its own data directory (and state settings), so the person's command opens
exactly the database and state the server uses, whatever their shell's environment.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from infra_mcp.settings import Settings


def _program() -> list[str]:
    """How to start this very installation of infra-mcp (a checkout's venv need not be on PATH)."""
    script = Path(sys.executable).parent / "infra-mcp"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "infra_mcp"]


def approval_command(plan_id: str, settings: Settings) -> str:
    """``INFRA_MCP_DATA_DIR=... infra-mcp plans approve <plan>`` for the server's settings."""
    env = {"INFRA_MCP_DATA_DIR": str(settings.data_dir.resolve())}
    if settings.state_location:
        env["INFRA_MCP_STATE_LOCATION"] = settings.state_location
    if settings.s3_endpoint_url:
        env["INFRA_MCP_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    if settings.key_file:
        env["INFRA_MCP_KEY_FILE"] = str(settings.key_file.resolve())
    words = [f"{name}={shlex.quote(value)}" for name, value in env.items()]
    words += [shlex.quote(part) for part in _program()]
    words += ["plans", "approve", shlex.quote(plan_id)]
    return " ".join(words)
