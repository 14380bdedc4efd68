"""Benchmark: detect drift over 1,000 resources against the sandbox, 50 ms per GetResource, parallelism 10.

Run::

    .venv/bin/python benchmarks/drift.py                 # sandbox over stdio (the real path)
    .venv/bin/python benchmarks/drift.py --in-process    # the sandbox's MCP server in-process

Everything is real except AWS: SQLite project store, local-folder state store, the MCP upstream
client, and the sandbox (``python -m infra_mcp.sandbox`` with ``INFRA_MCP_SANDBOX_READ_LATENCY_MS=50``,
the time each GetResource takes to answer). The 1,000 buckets are made in the sandbox's world
directly and recorded in a state version as if a plan had created them; 1 in 100 is then changed
behind infra-mcp's back and 1 in 250 deleted, so the comparison has drift to find.

The lower bound: each resource costs one GetResource, which cannot answer faster than the latency
plus the round trip ``rtt`` of a cheap call over the same upstream (``sts get-caller-identity``,
which the sandbox does not delay). With ``P`` reads at a time, no schedule beats
``ceil(N / P) * (latency + rtt)``. The benchmark prints the wall time, that bound and their ratio
(target: at most 1.2).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from infra_mcp.catalog import default_catalog
from infra_mcp.domain.drift import DriftStatus
from infra_mcp.domain.integrity import Notary
from infra_mcp.domain.project import Member, Project, Role
from infra_mcp.domain.state import ResourceStatus, StateFile, StateResource
from infra_mcp.logs import configure_logging
from infra_mcp.sandbox.cloud import SandboxCloud
from infra_mcp.sandbox.world import FileWorldStore
from infra_mcp.services.drift import DriftService
from infra_mcp.services.planning import PlanningService
from infra_mcp.services.secrets import SecretSealer
from infra_mcp.settings import Settings
from infra_mcp.stores.sqlite import SqliteProjectStore
from infra_mcp.stores.state_factory import StateStoreRegistry
from infra_mcp.upstream.factory import make_upstream

BUCKET = "AWS::S3::Bucket"


def populate(world: Path, count: int) -> list[StateResource]:
    """``count`` buckets in the sandbox's world, and their records as a plan would have written them."""
    cloud = SandboxCloud(FileWorldStore(world))
    records = []
    for i in range(count):
        name = f"drift-bench-{i:04d}"
        declared = {"BucketName": name, "VersioningConfiguration": {"Status": "Enabled"}}
        desired = {**declared, "Tags": [{"Key": "index", "Value": str(i)}]}
        event = cloud.call("CreateResource", {"TypeName": BUCKET, "DesiredState": json.dumps(desired)})
        token = event["ProgressEvent"]["RequestToken"]
        done = cloud.call("GetResourceRequestStatus", {"RequestToken": token})["ProgressEvent"]
        records.append(
            StateResource(
                id=name,
                name=name,
                type=BUCKET,
                properties=json.loads(done["ResourceModel"]),
                declared=declared,
                tags={"index": str(i)},
                status=ResourceStatus.ACTIVE,
            )
        )
    for i in range(0, count, 100):  # changed behind infra-mcp's back
        patch = [{"op": "replace", "path": "/VersioningConfiguration/Status", "value": "Suspended"}]
        cloud.call(
            "UpdateResource", {"TypeName": BUCKET, "Identifier": records[i].name, "PatchDocument": json.dumps(patch)}
        )
    for i in range(50, count, 250):  # deleted behind its back
        cloud.call("DeleteResource", {"TypeName": BUCKET, "Identifier": records[i].name})
    cloud.call("ListResources", {"TypeName": BUCKET})  # settles the requests above
    return records


async def measure_rtt(upstream: Any, samples: int = 20) -> float:
    """Median round trip of a call the sandbox answers at once (STS GetCallerIdentity)."""
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        await upstream.caller_identity(region="us-east-1")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def run(args: argparse.Namespace) -> None:
    configure_logging("WARNING")
    latency = args.latency_ms / 1000.0
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        settings = Settings(data_dir=data, sandbox_read_latency_ms=args.latency_ms, user="bench")
        records = populate(settings.sandbox_world_path, args.resources)
        server = None
        if args.in_process:
            from infra_mcp.sandbox.config import SandboxConfig
            from infra_mcp.sandbox.mcp_server import build_server

            config = SandboxConfig(read_latency_ms=args.latency_ms)
            server = build_server(SandboxCloud(FileWorldStore(settings.sandbox_world_path), config=config))
        upstream = make_upstream(settings, server=server)
        store = SqliteProjectStore(data / "bench.db")
        await store.open()
        try:
            states = StateStoreRegistry(settings)
            catalog = default_catalog()
            project = await store.create_project(
                Project(id="bench", name="bench", owner="bench", members=[Member(user="bench", role=Role.OWNER)])
            )
            state = StateFile.empty(project.id).next_version(records, user="bench", description="benchmark")
            await states.for_project(project).write(state)
            notary = Notary(b"benchmark server key, 32 bytes!!")
            planning = PlanningService(store, states, catalog, SecretSealer(data / "key"), notary=notary)
            service = DriftService(store, store, states, upstream, catalog, planning, parallelism=args.parallelism)
            await upstream.caller_identity(region="us-east-1")  # start the upstream before timing anything
            rtt = await measure_rtt(upstream)
            start, cpu_start = time.perf_counter(), time.process_time()
            report = await service.detect(project.id, "bench")
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        finally:
            await store.close()
            await upstream.aclose()

    n = len(report.resources)
    bound = math.ceil(n / args.parallelism) * (latency + rtt)
    path = "stdio subprocess (python -m infra_mcp.sandbox) through the MCP upstream client"
    if args.in_process:
        path = "the sandbox's MCP server in-process, through the MCP upstream client"
    counts = ", ".join(f"{report.count(s)} {s.value}" for s in DriftStatus)
    print(f"sandbox: {path}, {args.latency_ms} ms per GetResource, parallelism {args.parallelism}")
    print(f"resources: {n} ({counts})")
    print(f"round trip of one call: {rtt * 1000:.1f} ms; fastest possible GetResource: {(latency + rtt) * 1000:.1f} ms")
    print(f"CPU time of this process during detection: {cpu:.2f} s")
    print(
        f"wall time: {wall:.2f} s; bound ceil({n}/{args.parallelism}) x (latency + rtt): {bound:.2f} s; "
        f"ratio: {wall / bound:.2f} (target <= 1.2)"
    )
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resources", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--parallelism", type=int, default=10)
    parser.add_argument("--in-process", action="store_true", help="run the sandbox's MCP server in this process")
    anyio.run(run, parser.parse_args())


if __name__ == "__main__":
    main()
