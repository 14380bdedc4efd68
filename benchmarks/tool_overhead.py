"""Per-call overhead of `list_resources` over stdio, against a bare MCPServer tool returning the same payload.

Both servers run as subprocesses over stdio, measured in the same run, alternating, so machine noise
hits both alike. The bare server's tool returns the exact JSON that infra-mcp's list_resources
returned, so the difference is infra-mcp's own work per call: argument validation, the access check
(SQLite), reading the state file, filtering, building the typed model, logging.

    .venv/bin/python benchmarks/tool_overhead.py [--resources 200] [--calls 200]
"""

from __future__ import annotations

import argparse
import json
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

from infra_mcp.domain.state import StateFile, StateResource
from infra_mcp.stores.state_local import LocalStateStore

BARE_SERVER = textwrap.dedent(
    """
    import json, sys
    from typing import Any
    from mcp.server.mcpserver import MCPServer
    from infra_mcp.server.models import ResourceList

    payload: dict[str, Any] = json.loads(open(sys.argv[1]).read())
    typed = sys.argv[2] == "typed"
    server = MCPServer(name="bare")

    if typed:
        @server.tool(name="list_resources")
        def list_resources(project_id: str) -> ResourceList:
            return ResourceList.model_validate(payload)
    else:
        @server.tool(name="list_resources")
        def list_resources(project_id: str) -> dict[str, Any]:
            return payload

    server.run("stdio")
    """
)


async def _seed(data_dir: Path, resources: int) -> None:
    store = LocalStateStore(data_dir / "state")
    items = [
        StateResource(
            id=f"vpc-{i:017x}",
            name=f"net-{i}",
            type="AWS::EC2::VPC",
            properties={"CidrBlock": f"10.{i % 256}.0.0/16", "VpcId": f"vpc-{i:017x}"},
            declared={"CidrBlock": f"10.{i % 256}.0.0/16"},
            tags={"env": "bench"},
        )
        for i in range(resources)
    ]
    await store.write(StateFile.empty("bench").next_version(items, user="bench", description="seed"))


async def _time_calls(client: Client, calls: int) -> list[float]:
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        result = await client.call_tool("list_resources", {"project_id": "bench"})
        samples.append(time.perf_counter() - started)
        assert not result.is_error, result.content
    return samples


async def main(resources: int, calls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        env = {"INFRA_MCP_DATA_DIR": str(data_dir), "INFRA_MCP_USER": "bench", "INFRA_MCP_LOG_LEVEL": "WARNING"}
        ours = StdioServerParameters(command=sys.executable, args=["-m", "infra_mcp", "serve"], env=env)
        async with Client(ours) as client:
            await client.call_tool("create_project", {"project_id": "bench"})
            await _seed(data_dir, resources)
            first = await client.call_tool("list_resources", {"project_id": "bench"})
            payload: dict[str, Any] = first.structured_content or {}
            payload_file = data_dir / "payload.json"
            payload_file.write_text(json.dumps(payload))
            script = data_dir / "bare_server.py"
            script.write_text(BARE_SERVER)

            def bare(kind: str) -> StdioServerParameters:
                return StdioServerParameters(
                    command=sys.executable,
                    args=[str(script), str(payload_file), kind],
                    env={"PYTHONPATH": os.pathsep.join(sys.path)},
                )

            async with Client(bare("typed")) as typed_client, Client(bare("untyped")) as untyped_client:
                clients = {"infra-mcp": client, "bare, same model": typed_client, "bare, plain dict": untyped_client}
                samples: dict[str, list[float]] = {name: [] for name in clients}
                for c in clients.values():
                    await _time_calls(c, 10)  # warm-up: imports, catalog, SQLite page cache
                for _ in range(5):  # alternate in rounds so drift hits all alike
                    for name, c in clients.items():
                        samples[name] += await _time_calls(c, calls // 5)
    size_kb = len(json.dumps(payload)) / 1024
    median = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    print(f"list_resources over stdio, {resources} resources (~{size_kb:.0f} KB payload), {calls} calls each")
    print("  (the client validates structuredContent against the tool's output schema on every call)")
    for name, values in samples.items():
        print(f"  {name:<28} median {median[name]:7.2f} ms   p90 {_p90(values):7.2f} ms")
    ours, typed, untyped = median["infra-mcp"], median["bare, same model"], median["bare, plain dict"]
    print(f"  infra-mcp's own work per call (vs bare, same model):   {ours - typed:6.2f} ms  ({ours / typed:.2f}x)")
    print(f"  incl. typed-output validation (vs bare, plain dict):   {ours - untyped:6.2f} ms  ({ours / untyped:.2f}x)")


def _p90(samples: list[float]) -> float:
    return sorted(samples)[int(len(samples) * 0.9)] * 1000


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=200)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    anyio.run(main, args.resources, args.calls)
