"""Start-up and first-call latency over stdio, next to a bare MCPServer with one tool, in the same run.

Hosts start the server each time a conversation opens (and some give up after 10 s). For each of
``--runs`` rounds, alternating so machine noise hits both alike, this prints the time from spawning
the process to:

- the ``initialize`` answer,
- the ``tools/list`` answer,
- (infra-mcp only) the first ``plan_changes`` of a 5-resource desired state on a fresh project.

    .venv/bin/python benchmarks/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

# Started the same way as infra-mcp: the interpreter running a module-level script over stdio.
BARE_SERVER = textwrap.dedent(
    """
    from mcp.server.mcpserver import MCPServer

    server = MCPServer(name="bare")

    @server.tool(name="echo")
    def echo(text: str) -> str:
        return text

    server.run("stdio")
    """
)

STACK: dict[str, Any] = {
    "resources": [
        {"name": "vpc", "type": "AWS::EC2::VPC", "properties": {"CidrBlock": "10.0.0.0/16"}},
        {
            "name": "subnet",
            "type": "AWS::EC2::Subnet",
            "properties": {"VpcId": {"Ref": "vpc"}, "CidrBlock": "10.0.1.0/24"},
        },
        {
            "name": "sg",
            "type": "AWS::EC2::SecurityGroup",
            "properties": {"GroupDescription": "web", "VpcId": {"Fn::GetAtt": ["vpc", "VpcId"]}},
        },
        {"name": "logs", "type": "AWS::S3::Bucket", "properties": {}},
        {"name": "queue", "type": "AWS::SQS::Queue", "properties": {}},
    ]
}


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRA_MCP_")}
    env |= {"INFRA_MCP_DATA_DIR": str(data_dir), "INFRA_MCP_USER": "bench", "INFRA_MCP_LOG_LEVEL": "WARNING"}
    return env


async def _infra_mcp(data_dir: Path) -> dict[str, float]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "infra_mcp", "serve"], env=_env(data_dir))
    started = time.perf_counter()
    async with Client(params) as client:
        initialized = time.perf_counter() - started
        await client.list_tools()
        listed = time.perf_counter() - started
        project = f"p{time.monotonic_ns()}"
        await client.call_tool("create_project", {"project_id": project})
        before_plan = time.perf_counter()
        result = await client.call_tool("plan_changes", {"project_id": project, "desired_state": STACK})
        assert not result.is_error, result.content
        planned = time.perf_counter() - started
        return {
            "initialize": initialized,
            "tools/list": listed,
            "first plan_changes": planned,
            "plan_changes call": time.perf_counter() - before_plan,
        }


async def _bare(script: Path) -> dict[str, float]:
    params = StdioServerParameters(command=sys.executable, args=[str(script)], env=dict(os.environ))
    started = time.perf_counter()
    async with Client(params) as client:
        initialized = time.perf_counter() - started
        await client.list_tools()
        return {"initialize": initialized, "tools/list": time.perf_counter() - started}


async def _main(runs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        script = root / "bare_server.py"
        script.write_text(BARE_SERVER, encoding="utf-8")
        ours: list[dict[str, float]] = []
        bare: list[dict[str, float]] = []
        for run in range(runs):
            bare.append(await _bare(script))
            ours.append(await _infra_mcp(root / f"data-{run}"))
    print(f"median of {runs} runs, seconds from spawn (Python {sys.version.split()[0]}, {os.cpu_count()} cores)")
    print(f"{'':22} {'bare MCPServer':>15} {'infra-mcp':>10} {'ratio':>6}")
    for key in ("initialize", "tools/list", "first plan_changes", "plan_changes call"):
        mine = statistics.median(r[key] for r in ours)
        if key in bare[0]:
            theirs = statistics.median(r[key] for r in bare)
            print(f"{key:22} {theirs:15.3f} {mine:10.3f} {mine / theirs:6.2f}")
        else:
            print(f"{key:22} {'':>15} {mine:10.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    anyio.run(_main, parser.parse_args().runs)


if __name__ == "__main__":
    main()
