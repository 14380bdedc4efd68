"""Start-up with broken project storage (issue 16): `initialize` with 50 projects, 5 of them on an
unreachable S3 endpoint, against the same 50 projects all healthy. Target: within 1.5x.

Each round launches `infra-mcp serve` over stdio, as an agent host does, and times

- ``initialize``: from launching the process to the handshake's answer;
- ``first read``: then ``list_projects`` and ``list_resources`` on a healthy project.

Rounds alternate between the two data dirs, so machine noise hits both alike. The unreachable
endpoint is ``refused`` (a closed port on 127.0.0.1: connections refused at once) or ``silent``
(a listener that accepts and never answers, so every S3 call waits out its read timeout).

    .venv/bin/python benchmarks/startup_degraded.py [--projects 50] [--broken 5] [--rounds 5] [--endpoint refused|silent]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from infra_mcp.container import open_app
from infra_mcp.domain.project import Member, Project, ProjectSettings, Role
from infra_mcp.domain.state import StateFile, StateResource
from infra_mcp.logs import configure_logging
from infra_mcp.settings import Settings

USER = "bench"
BUCKET_LOCATION = "s3://bench-state/infra"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextlib.contextmanager
def _silent_endpoint() -> Iterator[int]:
    """A listener on 127.0.0.1 that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


def _settings(data_dir: Path, endpoint: str) -> Settings:
    return Settings(data_dir=data_dir, user=USER, allowed_state_locations=[BUCKET_LOCATION], s3_endpoint_url=endpoint)


async def _seed(data_dir: Path, endpoint: str, projects: int, broken: int) -> None:
    """``projects`` projects, each with one resource in state; the first ``broken`` keep state in the bucket.

    The broken ones are written to the database directly: creating them through the service would
    (rightly) read their unreachable location first.
    """
    async with open_app(_settings(data_dir, endpoint), reconcile=False) as app:
        for index in range(projects):
            location = BUCKET_LOCATION if index < broken else None
            project = Project(
                id=f"p-{index:03d}",
                name=f"project {index}",
                owner=USER,
                members=[Member(user=USER, role=Role.OWNER)],
                settings=ProjectSettings(state_location=location),
            )
            await app.store.create_project(project)
            if location is None:
                state = StateFile.empty(project.id).next_version(
                    [StateResource(id=f"vpc-{index:017x}", name="net", type="AWS::EC2::VPC")],
                    user=USER,
                    description="seed",
                )
                await app.locations.for_project(project).write(state)


def _params(data_dir: Path, endpoint: str) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if k.startswith("AWS_") or k in ("PATH", "HOME")}
    env.setdefault("AWS_ACCESS_KEY_ID", "bench")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    env.update(
        {
            "INFRA_MCP_DATA_DIR": str(data_dir),
            "INFRA_MCP_USER": USER,
            "INFRA_MCP_LOG_LEVEL": "WARNING",
            "INFRA_MCP_ALLOWED_STATE_LOCATIONS": json.dumps([BUCKET_LOCATION]),
            "INFRA_MCP_S3_ENDPOINT_URL": endpoint,
        }
    )
    return StdioServerParameters(command=sys.executable, args=["-m", "infra_mcp", "serve"], env=env)


async def _round(params: StdioServerParameters, healthy_project: str) -> tuple[float, float]:
    started = time.perf_counter()
    # The servers' logs (a warning per broken project) would drown the figures: they go nowhere.
    with open(os.devnull, "w") as quiet:  # noqa: ASYNC230 - opening /dev/null does not block
        async with Client(stdio_client(params, errlog=quiet)) as client:
            initialized = time.perf_counter() - started
            listed = await client.call_tool("list_projects", {})
            read = await client.call_tool("list_resources", {"project_id": healthy_project})
            first_read = time.perf_counter() - started
            assert not listed.is_error, listed.content
            assert not read.is_error, read.content
    return initialized, first_read


async def main() -> None:
    configure_logging("WARNING")  # the seeding's own log lines are not the point
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--broken", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--endpoint", choices=["refused", "silent"], default="refused")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="infra-mcp-bench-")))
        port = stack.enter_context(_silent_endpoint()) if args.endpoint == "silent" else _closed_port()
        endpoint = f"http://127.0.0.1:{port}"
        healthy, degraded = root / "healthy", root / "degraded"
        await _seed(healthy, endpoint, args.projects, 0)
        await _seed(degraded, endpoint, args.projects, args.broken)
        target = f"p-{args.projects - 1:03d}"

        times: dict[str, list[tuple[float, float]]] = {"healthy": [], "degraded": []}
        await _round(_params(healthy, endpoint), target)  # warm-up: imports, bytecode, page cache
        for _ in range(args.rounds):
            times["healthy"].append(await _round(_params(healthy, endpoint), target))
            times["degraded"].append(await _round(_params(degraded, endpoint), target))

    init = {k: statistics.median(t[0] for t in v) for k, v in times.items()}
    read = {k: statistics.median(t[1] for t in v) for k, v in times.items()}
    print(
        f"{args.projects} projects, {args.broken} on an unreachable ({args.endpoint}) S3 endpoint; "
        f"median of {args.rounds} rounds over stdio"
    )
    print(f"  initialize:            all healthy {init['healthy']:.3f} s   with broken {init['degraded']:.3f} s")
    print(f"  + first healthy read:  all healthy {read['healthy']:.3f} s   with broken {read['degraded']:.3f} s")
    ratio = init["degraded"] / init["healthy"]
    print(
        f"  initialize ratio: {ratio:.2f}x (target <= 1.5x)   first-read ratio: {read['degraded'] / read['healthy']:.2f}x"
    )


if __name__ == "__main__":
    anyio.run(main)
