"""``infra-mcp serve --http``: MCP over streamable HTTP on loopback, with a real MCP client.

Without auth settings the server binds loopback only (DNS-rebinding protection on) and acts as
INFRA_MCP_USER, like stdio; it refuses any other bind. It stops gracefully: a call in flight
finishes before the process exits.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, cast

import httpx2
import pytest
from mcp import Client
from mcp.client.session import ElicitationFnT

from tests.e2e.conftest import call_ok
from tests.e2e.http_server import free_port, http_server
from tests.e2e.loop_helpers import Human, make_plan, make_project, vpc_stack

pytestmark = pytest.mark.slow

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "probe", "version": "0"},
    },
}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def test_plan_approve_by_elicitation_and_execute_with_progress_over_http(tmp_path: Path) -> None:
    with http_server(tmp_path / "data") as server:
        human = Human()
        progress: list[tuple[float, float | None, str | None]] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append((done, total, message))

        async with Client(server.mcp_url, elicitation_callback=cast(ElicitationFnT, human)) as client:
            await make_project(client)
            plan_id = await make_plan(client, vpc_stack(subnets=2))
            approved = await call_ok(client, "approve_plan", {"plan_id": plan_id})
            executed = await call_ok(client, "execute_plan", {"plan_id": plan_id}, progress_callback=on_progress)
            listed = await call_ok(client, "list_projects")

    assert approved["outcome"] == "approved"
    assert approved["approved_by"] == "alice"
    assert approved["method"] == "elicitation"
    assert len(human.prompts) == 1
    assert plan_id in human.prompts[0].message
    assert executed["status"] == "executed"
    assert progress
    assert progress[-1][0] == progress[-1][1]
    assert listed["user"] == "alice"


def test_loopback_start_says_it_is_unauthenticated_and_loopback_only(tmp_path: Path) -> None:
    with http_server(tmp_path / "data") as server:
        said = server.stderr
    assert "loopback only, without authentication" in said
    assert "DNS-rebinding protection on" in said


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Host": "evil.example:80"}, 421),
        ({"Origin": "http://evil.example"}, 403),
    ],
    ids=["foreign-host", "foreign-origin"],
)
def test_dns_rebinding_protection_refuses_a_foreign_host_or_origin(
    tmp_path: Path, headers: dict[str, str], status: int
) -> None:
    with http_server(tmp_path / "data") as server:
        refused = httpx2.post(server.mcp_url, json=INITIALIZE, headers={**HEADERS, **headers}, timeout=10)
        accepted = httpx2.post(server.mcp_url, json=INITIALIZE, headers=HEADERS, timeout=10)
    assert refused.status_code == status
    assert accepted.status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.com"])  # noqa: S104 (refused, never bound)
def test_a_non_loopback_bind_without_auth_is_refused_before_binding(tmp_path: Path, host: str) -> None:
    bind = f"[{host}]:{free_port()}" if ":" in host else f"{host}:{free_port()}"
    env = {"INFRA_MCP_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "infra_mcp", "serve", "--http", bind],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "Refusing to serve" in done.stderr
    assert "INFRA_MCP_AUTH_ISSUER" in done.stderr
    assert "VALIDATION_001" in done.stderr


def test_a_malformed_bind_is_refused(tmp_path: Path) -> None:
    env = {"INFRA_MCP_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "infra_mcp", "serve", "--http", "127.0.0.1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "HOST:PORT" in done.stderr


async def test_sigterm_lets_an_execution_in_flight_finish_before_the_process_exits(tmp_path: Path) -> None:
    # Each sandbox mutation stays IN_PROGRESS for 1.5 s: the execution is still running when SIGTERM arrives.
    with http_server(tmp_path / "data", INFRA_MCP_SANDBOX_LATENCY_MS="1500") as server:
        async with Client(server.mcp_url, elicitation_callback=cast(ElicitationFnT, Human())) as client:
            await make_project(client)
            plan_id = await make_plan(client, vpc_stack(subnets=2))
            await call_ok(client, "approve_plan", {"plan_id": plan_id})
            started = threading.Event()

            async def on_progress(*_: Any) -> None:
                if not started.is_set():
                    started.set()
                    # Asked to stop while the execution runs (from a thread: the call must not wait for it).
                    threading.Thread(target=lambda: server.process.send_signal(15), daemon=True).start()

            executed = await call_ok(client, "execute_plan", {"plan_id": plan_id}, progress_callback=on_progress)
        assert started.is_set()
        code = server.process.wait(30)
        log = server.stderr
    assert executed["status"] == "executed"
    assert all(line.startswith("created") for line in executed["changes"]), executed["changes"]
    assert "http_stopping" in log
    assert "http_drained" in log
    assert code in (0, -15)  # uvicorn re-raises the captured SIGTERM once stopped


def test_a_second_signal_stops_at_once(tmp_path: Path) -> None:
    with http_server(tmp_path / "data") as server:
        server.process.send_signal(2)
        time.sleep(0.3)
        server.process.send_signal(2)
        assert server.process.wait(30) is not None


async def test_a_call_arriving_after_the_stop_began_is_refused_with_nothing_done(tmp_path: Path) -> None:
    from infra_mcp.server.app import build_server
    from infra_mcp.settings import Settings

    server = build_server(Settings(data_dir=tmp_path / "data", user="alice"))
    async with Client(server) as client:
        await call_ok(client, "create_project", {"project_id": "web"})
        server.drain.stop()  # type: ignore[attr-defined]
        refused = await client.call_tool("create_project", {"project_id": "other"})
        assert server.drain.idle  # type: ignore[attr-defined]
    assert refused.is_error
    payload = json.loads(refused.content[0].text)  # type: ignore[union-attr]
    assert payload["code"] == "SERVER_001"
    assert payload["details"]["nothing_done"] is True


def test_a_damaged_database_stops_start_up_with_its_code_and_next_step(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "infra-mcp.sqlite3").write_bytes(b"not a database at all")
    done = subprocess.run(
        [sys.executable, "-m", "infra_mcp", "serve", "--http", f"127.0.0.1:{free_port()}"],
        env={"INFRA_MCP_DATA_DIR": str(data), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "infra-mcp: cannot start: STATE_001" in done.stderr
