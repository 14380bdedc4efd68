"""``infra-mcp demo``: a visible end-to-end run against the sandbox, through a real MCP client.

It starts ``infra-mcp serve`` as a subprocess (exactly as an agent host would), connects
``mcp.Client`` to it over stdio and walks through the product, printing each call and what
came back. This module is a terminal program: printing is its job (it is never the server).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from rich.console import Console
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

console = Console(highlight=False)


class DemoFailed(RuntimeError):
    pass


class Demo:
    def __init__(self, client: Client, *, fast: bool) -> None:
        self.client = client
        self.fast = fast
        self.step_no = 0

    def step(self, title: str, why: str) -> None:
        self.step_no += 1
        console.print()
        console.rule(f"[bold cyan]{self.step_no}. {title}")
        console.print(f"[dim]{why}")
        if not self.fast:
            time.sleep(0.3)

    async def call(
        self,
        tool: str,
        arguments: dict[str, Any] | None = None,
        *,
        show: bool = True,
        expect_error: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        args = arguments or {}
        console.print(f"[bold]→ tools/call[/bold] [green]{tool}[/green] {json.dumps(args)[:300]}")
        result = await self.client.call_tool(tool, args, **kwargs)
        if result.is_error:
            text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
            payload = json.loads(text) if text.startswith("{") else {"message": text}
            style = "yellow" if expect_error else "red"
            console.print(f"[{style}]← error {payload.get('code')}: {payload.get('message')}")
            if not expect_error:
                raise DemoFailed(f"{tool} failed: {text}")
            return payload
        if expect_error:
            raise DemoFailed(f"{tool} was expected to be refused but succeeded")
        data = result.structured_content or {}
        if show:
            console.print(Syntax(json.dumps(data, indent=2)[:2500], "json", theme="ansi_dark", word_wrap=True))
        return data

    async def read(self, uri: str, *, limit: int = 2000) -> Any:
        console.print(f"[bold]→ resources/read[/bold] [magenta]{uri}")
        result = await self.client.read_resource(uri)
        text = result.contents[0].text  # type: ignore[union-attr]
        console.print(Syntax(text[:limit] + ("\n..." if len(text) > limit else ""), "json", theme="ansi_dark"))
        return json.loads(text)


def _server_params(data_dir: Path) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if k.startswith(("INFRA_MCP_", "AWS_"))}
    env.update({"INFRA_MCP_DATA_DIR": str(data_dir), "INFRA_MCP_USER": env.get("INFRA_MCP_USER", "demo-user")})
    env.pop("INFRA_MCP_UPSTREAM_COMMAND", None)  # the demo always runs against the sandbox
    env.pop("INFRA_MCP_UPSTREAM_URL", None)
    env.pop("INFRA_MCP_STATE_LOCATION", None)
    return StdioServerParameters(command=sys.executable, args=["-m", "infra_mcp", "serve"], env=env)


async def _walk(demo: Demo, data_dir: Path) -> None:
    client = demo.client
    demo.step("Connect", "An MCP client starts `infra-mcp serve` over stdio, like Claude Desktop would.")
    tools = await client.list_tools()
    table = Table("tool", "read-only", "destructive", title="tools/list")
    for tool in tools.tools:
        ann = tool.annotations
        table.add_row(tool.name, str(bool(ann and ann.read_only_hint)), str(bool(ann and ann.destructive_hint)))
    console.print(table)

    project_id = "demo-web"
    demo.step("Create a project", "Projects live in SQLite; the caller becomes the owner.")
    await demo.call(
        "create_project",
        {
            "project_id": project_id,
            "name": "Demo web app",
            "description": "A small web stack",
            "default_region": "us-east-1",
        },
    )
    demo.step("Bad input is refused, nothing stored", "Ids become storage paths: '../etc' can never be one.")
    await demo.call("create_project", {"project_id": "../etc"}, expect_error=True)
    await demo.call("create_project", {"project_id": project_id}, expect_error=True)

    demo.step("Read it back", "get_project, list_projects and the project resource agree.")
    await demo.call("get_project", {"project_id": project_id}, show=False)
    listed = await demo.call("list_projects", show=False)
    console.print(f"[green]✓[/green] list_projects shows {[p['project']['id'] for p in listed['projects']]}")
    await demo.read(f"infra://projects/{project_id}", limit=600)

    demo.step("State and history", "State is versioned (serial, lineage, checksum); nothing written yet.")
    await demo.read(f"infra://projects/{project_id}/state")
    await demo.read(f"infra://projects/{project_id}/state/history")

    console.print()
    console.print(Panel.fit(f"[bold green]Demo finished.[/bold green] Data kept in {data_dir}", border_style="green"))


async def _run(data_dir: Path, fast: bool) -> None:
    async with Client(_server_params(data_dir)) as client:
        await _walk(Demo(client, fast=fast), data_dir)


def run_demo(*, data_dir: str | None, fast: bool) -> int:
    folder = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="infra-mcp-demo-"))
    console.print(
        Panel.fit(
            "[bold]infra-mcp demo[/bold]: desired state → plan → human approval → execute → versioned state\n"
            f"Data directory: {folder}\nUpstream: the built-in sandbox (simulated Cloud Control; no AWS account used)",
            border_style="cyan",
        )
    )
    try:
        anyio.run(_run, folder, fast)
    except DemoFailed as exc:
        console.print(f"[bold red]Demo failed:[/bold red] {exc}")
        return 1
    return 0
