"""Over real stdio (how hosts launch the server), a line the SDK cannot parse still gets an answer."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from tests.e2e.conftest import stdio_params

pytestmark = pytest.mark.slow

# A liveness guard, not a timing assertion: a silent server must fail the test, not hang CI.
LIVENESS_SECONDS = 60
PARSE_ERROR = -32700


class RawSession:
    """Line-level JSON-RPC over a server subprocess, to send what no well-behaved client would."""

    def __init__(self, process: Process) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self.process = process
        self.stdin = process.stdin
        self.stdout = BufferedByteReceiveStream(process.stdout)

    async def send_line(self, line: str) -> None:
        await self.stdin.send(line.encode("utf-8") + b"\n")

    async def answer(self) -> dict[str, Any]:
        with anyio.fail_after(LIVENESS_SECONDS):
            line = await self.stdout.receive_until(b"\n", max_bytes=10_000_000)
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def call(self, line: str) -> dict[str, Any]:
        await self.send_line(line)
        return await self.answer()


@asynccontextmanager
async def raw_server(data_dir: Path) -> AsyncIterator[RawSession]:
    params = stdio_params(data_dir, "alice")
    async with await anyio.open_process([sys.executable, *params.args], env=params.env, stderr=None) as process:
        session = RawSession(process)
        initialize = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        assert "result" in await session.call(json.dumps(initialize))
        await session.send_line(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        try:
            yield session
        finally:
            await session.stdin.aclose()
            with anyio.fail_after(LIVENESS_SECONDS):
                await process.wait()


def tool_call(request_id: int, arguments_json: str, tool: str = "plan_changes") -> str:
    # Written by hand: json.dumps would refuse the depth, and would escape nothing the way an attacker does.
    return (
        f'{{"jsonrpc":"2.0","id":{request_id},"method":"tools/call",'
        f'"params":{{"name":"{tool}","arguments":{arguments_json}}}}}'
    )


def error_code_in(answer: dict[str, Any]) -> str:
    if "error" in answer:
        return str(json.loads(answer["error"]["message"])["code"])
    assert answer["result"]["isError"] is True
    return str(json.loads(answer["result"]["content"][0]["text"])["code"])


async def test_deep_nesting_and_lone_surrogates_get_an_error_answer_and_the_server_keeps_serving(
    data_dir: Path,
) -> None:
    deep = "[" * 5000 + "]" * 5000
    async with raw_server(data_dir) as server:
        answer = await server.call(tool_call(1, f'{{"project_id":"web","desired_state":{{"a":{deep}}}}}'))
        assert answer["id"] == 1
        assert error_code_in(answer) == "VALIDATION_001"

        answer = await server.call(tool_call(2, '{"project_id":"web\\ud800"}', tool="get_project"))
        assert answer["id"] == 2
        assert error_code_in(answer) == "VALIDATION_001"

        answer = await server.call('{"jsonrpc":"2.0","id":"s-\\udc00","method":"tools/call","params":{}}')
        assert answer["id"] is None, "an id that cannot be written back is not echoed"
        assert error_code_in(answer) == "VALIDATION_001"

        answer = await server.call("this is not json")
        assert answer["id"] is None
        assert answer["error"]["code"] == PARSE_ERROR

        answer = await server.call(tool_call(3, '{"project_id":"web"}', tool="get_project"))
        assert answer["id"] == 3
        assert error_code_in(answer) == "RESOURCE_001"


async def test_an_answer_to_an_unparsable_request_is_never_an_internal_error(data_dir: Path) -> None:
    async with raw_server(data_dir) as server:
        answer = await server.call(tool_call(7, '{"project_id":"web","desired_state":{"k":"\\udfff"}}'))
    assert answer["id"] == 7
    assert answer.get("error", {}).get("code") != -32603
    assert error_code_in(answer) == "VALIDATION_001"
