"""E2E fixtures: a real mcp.Client against the real server (in-process, or over stdio)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from infra_mcp.server.app import build_server
from infra_mcp.settings import Settings

ClientFactory = Callable[..., AbstractAsyncContextManager[Client]]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def settings_for(data_dir: Path, user: str, **overrides: Any) -> Settings:
    return Settings(data_dir=data_dir, user=user, **overrides)


@pytest.fixture
def connect(data_dir: Path) -> ClientFactory:
    """``async with connect("alice") as client``: an in-process server acting as that user."""

    @asynccontextmanager
    async def factory(user: str = "alice", **kwargs: Any) -> AsyncIterator[Client]:
        settings_overrides = kwargs.pop("settings", {})
        server = build_server(settings_for(data_dir, user, **settings_overrides))
        async with Client(server, **kwargs) as client:
            yield client

    return factory


def stdio_params(data_dir: Path, user: str = "alice", **env: str) -> StdioServerParameters:
    base = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    base.update({"INFRA_MCP_DATA_DIR": str(data_dir), "INFRA_MCP_USER": user, "INFRA_MCP_LOG_LEVEL": "WARNING"})
    base.update(env)
    return StdioServerParameters(command=sys.executable, args=["-m", "infra_mcp", "serve"], env=base)


async def call_ok(client: Client, tool: str, args: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args or {}, **kwargs)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def call_error(client: Client, tool: str, args: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Call a tool that must fail; return the parsed error (code, message, request_id, timestamp, details)."""
    result = await client.call_tool(tool, args or {}, **kwargs)
    assert result.is_error, f"{tool} unexpectedly succeeded: {result.structured_content}"
    text = result.content[0].text  # type: ignore[union-attr]
    payload: dict[str, Any] = json.loads(text)
    assert set(payload) >= {"code", "message", "request_id", "timestamp", "details"}
    return payload


async def read_json(client: Client, uri: str) -> Any:
    result = await client.read_resource(uri)
    return json.loads(result.contents[0].text)  # type: ignore[union-attr]
