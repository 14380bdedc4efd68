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
import uuid
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp_types import ElicitResult
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

console = Console(highlight=False)


class DemoFailed(RuntimeError):
    pass


# Arguments are shown on one line, cut with an ellipsis so nobody mistakes the cut for the real call.
_ARGS_MAX = 300


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
        line = Text.assemble(("→ tools/call ", "bold"), (tool, "green"), " ", _shorten(json.dumps(args), _ARGS_MAX))
        console.print(line, overflow="ellipsis", no_wrap=True)
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
            console.print(Syntax(_shorten(json.dumps(data, indent=2), 2500), "json", theme="ansi_dark", word_wrap=True))
        return data

    async def read(self, uri: str, *, limit: int = 2000) -> Any:
        console.print(f"[bold]→ resources/read[/bold] [magenta]{uri}")
        result = await self.client.read_resource(uri)
        text = result.contents[0].text  # type: ignore[union-attr]
        if limit:
            # Wrapped, not cropped: a cropped line shows a checksum with no closing quote.
            console.print(Syntax(_shorten(text, limit), "json", theme="ansi_dark", word_wrap=True))
        return json.loads(text)


def _server_params(data_dir: Path) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if k.startswith(("INFRA_MCP_", "AWS_"))}
    env.update(
        {
            "INFRA_MCP_DATA_DIR": str(data_dir),
            "INFRA_MCP_USER": env.get("INFRA_MCP_USER", "demo-user"),
            "INFRA_MCP_LOG_LEVEL": env.get("INFRA_MCP_LOG_LEVEL", "WARNING"),
            "INFRA_MCP_SANDBOX_LATENCY_MS": env.get("INFRA_MCP_SANDBOX_LATENCY_MS", "300"),
        }
    )
    env.pop("INFRA_MCP_UPSTREAM_COMMAND", None)  # the demo always runs against the sandbox
    env.pop("INFRA_MCP_UPSTREAM_URL", None)
    env.pop("INFRA_MCP_STATE_LOCATION", None)
    return StdioServerParameters(command=sys.executable, args=["-m", "infra_mcp", "serve"], env=env)


def _stack(bucket: str) -> dict[str, Any]:
    return {
        "resources": [
            {
                "name": "web-vpc",
                "type": "AWS::EC2::VPC",
                "properties": {"CidrBlock": "10.0.0.0/16"},
                "tags": {"Environment": "demo"},
            },
            {
                "name": "web-subnet",
                "type": "EC2::Subnet",
                "properties": {"VpcId": {"Ref": "web-vpc"}, "CidrBlock": "10.0.1.0/24"},
            },
            {
                "name": "web-sg",
                "type": "AWS::EC2::SecurityGroup",
                "properties": {"GroupDescription": "web servers", "VpcId": {"Fn::GetAtt": ["web-vpc", "VpcId"]}},
            },
            {
                "name": "web-server",
                "type": "AWS::EC2::Instance",
                "properties": {
                    "InstanceType": "t3.micro",
                    "ImageId": "ami-0abcdef1234567890",
                    "SubnetId": {"Ref": "web-subnet"},
                    "SecurityGroupIds": [{"Ref": "web-sg"}],
                },
            },
            {"name": "web-logs", "type": "AWS::S3::Bucket", "properties": {"BucketName": bucket}},
        ]
    }


class HumanAtTheKeyboard:
    """Answers the approval prompt as the demo's human would: shows it, then approves."""

    def __init__(self) -> None:
        self.prompts = 0

    async def __call__(self, context: Any, params: Any) -> ElicitResult:
        self.prompts += 1
        # Text, not markup: "[low]", "[high]" in the prompt are the server's risk labels, not rich tags.
        console.print(
            Panel(Text(params.message), title="[bold]Approval prompt shown to the human", border_style="yellow")
        )
        console.print("[yellow]The human reads it and answers:[/yellow] approve = yes")
        return ElicitResult(action="accept", content={"approve": True, "comment": "reviewed in the demo"})


async def _approve_and_execute(demo: Demo, plan_id: str) -> dict[str, Any]:
    approval = await demo.call("approve_plan", {"plan_id": plan_id, "comment": "demo"}, show=False)
    console.print(
        f"[green]✓ approved[/green] by {approval['approved_by']} via {approval['method']}, "
        f"valid until {approval['expires_at']}"
    )
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), console=console
    ) as bar:
        task = bar.add_task("execute_plan", total=None)

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            bar.update(task, completed=done, total=total, description=message or "execute_plan")

        result = await demo.call("execute_plan", {"plan_id": plan_id}, show=False, progress_callback=on_progress)
    outcomes = Table("what happened", title=f"{result['plan_id']}: {result['status']}")
    for line in result["changes"]:
        outcomes.add_row(Text(line))
    console.print(outcomes)
    # The tool answers at a glance; the full plan (outcomes, final state version) is its resource.
    return dict(await demo.read(result["plan_uri"], limit=0))


async def _show_plan(demo: Demo, view: dict[str, Any]) -> None:
    diff = (await demo.client.read_resource(view["diff_uri"])).contents[0].text  # type: ignore[union-attr]
    console.print(f"[bold]→ resources/read[/bold] [magenta]{view['diff_uri']}")
    console.print(Panel(Text(diff), title=f"{view['plan_id']} — risk {view['risk']}", border_style="blue"))
    console.print(Text.assemble(("next step: ", "dim"), view["next_step"]))


async def _walk(demo: Demo, data_dir: Path) -> None:
    client = demo.client
    demo.step("Connect", "An MCP client starts `infra-mcp serve` over stdio, like Claude Desktop would.")
    tools = await client.list_tools()
    table = Table("tool", "read-only", "destructive", title="tools/list")
    for tool in tools.tools:
        ann = tool.annotations
        table.add_row(tool.name, str(bool(ann and ann.read_only_hint)), str(bool(ann and ann.destructive_hint)))
    console.print(table)
    status = (await demo.call("get_server_status", show=False))["upstream"]
    console.print(
        Text.assemble(
            "Upstream: ",
            (status["kind"], "bold"),
            f" ({status['dialect']}), as {status['caller_arn'] or '?'} — ",
            status["note"],
        )
    )

    suffix = uuid.uuid4().hex[:6]
    project_id = f"demo-web-{suffix}"
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
    console.print(f"[green]✓[/green] list_projects shows {[p['project_id'] for p in listed['projects']]}")
    await demo.read(f"infra://projects/{project_id}", limit=600)

    demo.step("State and history", "State is versioned (serial, lineage, checksum); nothing written yet.")
    await demo.read(f"infra://projects/{project_id}/state")
    await demo.read(f"infra://projects/{project_id}/state/history")

    demo.step("Plan a small stack", "A desired state becomes a plan: diff, risk, cost. Nothing touches AWS yet.")
    view = await demo.call(
        "plan_changes",
        {
            "project_id": project_id,
            "desired_state": _stack(f"demo-logs-{suffix}"),
            "description": "First version of the web stack",
        },
        show=False,
    )
    await _show_plan(demo, view)
    first_plan = view["plan_id"]

    demo.step("Execution needs approval first", "execute_plan refuses a plan nobody approved.")
    await demo.call("execute_plan", {"plan_id": first_plan}, expect_error=True)

    demo.step("Approve (a human confirms) and execute", "approve_plan asks the human through MCP elicitation.")
    executed = await _approve_and_execute(demo, first_plan)
    first_version = executed["execution"]["final_serial"]

    demo.step("Resources and history", "The state now records what exists, with real ids from Cloud Control.")
    resources = await demo.call("list_resources", {"project_id": project_id}, show=False)
    table = Table("name", "type", "physical id", "status", title=f"state serial {resources['serial']}")
    for resource in resources["resources"]:
        table.add_row(resource["name"], resource["type"], resource["id"], resource["status"])
    console.print(table)
    history = await demo.call("get_state_history", {"project_id": project_id}, show=False)
    for version in history["versions"]:
        console.print(
            Text(
                f"  v{version['serial']}: {version['resource_count']} resources — "
                f"{version['change_description']} ({version['change_plan_id']}, by {version['last_modified_by']})"
            )
        )

    demo.step("A change that forces replacement", "CidrBlock of a subnet is create-only: the plan says -/+.")
    view = await demo.call(
        "plan_resource",
        {
            "project_id": project_id,
            "action": "update",
            "resource": "web-subnet",
            "properties": {"CidrBlock": "10.0.2.0/24"},
            "description": "Move the subnet",
        },
        show=False,
    )
    await _show_plan(demo, view)
    await _approve_and_execute(demo, view["plan_id"])

    demo.step(
        "Roll back (as a plan)",
        f"plan_changes with to_version plans the way back to version {first_version}; it needs approval like any "
        "other plan.",
    )
    rollback = await demo.call("plan_changes", {"project_id": project_id, "to_version": first_version}, show=False)
    await _show_plan(demo, rollback)

    demo.step("Audit log", "Every mutation, approval and execution is recorded.")
    audit = (await demo.read(f"infra://projects/{project_id}/audit", limit=0))["events"]
    for event in reversed(audit):
        console.print(
            Text(
                f"  {event['at'][:19]} {event['actor']:<12} {event['action']:<34} {event['outcome']}"
                f" {event.get('target') or ''}"
            ),
            overflow="ellipsis",
            no_wrap=True,
        )

    console.print()
    console.print(Panel.fit(f"[bold green]Demo finished.[/bold green] Data kept in {data_dir}", border_style="green"))


async def _run(data_dir: Path, fast: bool) -> None:
    async with Client(_server_params(data_dir), elicitation_callback=HumanAtTheKeyboard()) as client:
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
