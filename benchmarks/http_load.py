"""Benchmark: 50 concurrent MCP clients calling list_resources and get_plan, on one replica, then three.

Run (PostgreSQL on 127.0.0.1:5432 with trust auth, as on this project's machines)::

    .venv/bin/python benchmarks/http_load.py
    .venv/bin/python benchmarks/http_load.py --clients 50 --seconds 20 --state folder

What runs, all on this machine: ``infra-mcp serve --http`` replicas on 127.0.0.1 (each its own
process), one PostgreSQL schema made for the run (dropped after), and the state in a bucket of a moto
S3 server (its own process; ``--state folder`` puts it in a shared folder instead). A project holds a
VPC stack executed against the sandbox. Each client is an ``mcp.Client`` (its own connection, protocol
2026-07-28), calling ``list_resources`` and ``get_plan`` in turn, as fast as answers come, for the
given time after a warm-up. Client ``i`` talks to replica ``i mod N``: what a load balancer spreading
clients evenly does, without a proxy's own cost in the figures.

It prints, per phase: calls, errors, throughput, p50/p99 latency, and where the CPU went (the
replicas', the load generator's, PostgreSQL's and S3's CPU seconds over the phase, against the
machine's cores x seconds): on a small machine the bound is CPU, not infra-mcp's design.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import boto3
from mcp import Client
from mcp_types import ElicitRequestParams, ElicitResult

DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/test"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise SystemExit(f"{what} did not listen within {timeout} s")


@contextlib.contextmanager
def process(argv: list[str], port: int, what: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_listening(port, proc, what)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its children that were waited for (from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / TICKS


def postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL server process (they belong to the postgres user)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if b"postgres" in (entry / "cmdline").read_bytes()[:200] and entry.stat().st_uid != os.getuid():
                    total += cpu_seconds(int(entry.name))
    return total


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy since boot (every process, ours or not)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / TICKS


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


@dataclass
class Phase:
    replicas: int
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        return len(self.latencies) + len(self.errors)

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def quantile(self, q: float) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else 0.0
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[round(q * 100) - 1]


async def approve(_ctx: Any, _params: ElicitRequestParams) -> ElicitResult:
    return ElicitResult(action="accept", content={"approve": True, "comment": "benchmark"})


async def seed(url: str) -> str:
    """A project with an executed VPC stack (1 VPC, 8 subnets, 3 buckets); the plan's id."""
    resources: list[dict[str, Any]] = [
        {"name": "vpc", "type": "AWS::EC2::VPC", "properties": {"CidrBlock": "10.0.0.0/16"}, "tags": {"env": "bench"}}
    ]
    resources += [
        {
            "name": f"subnet-{i}",
            "type": "AWS::EC2::Subnet",
            "properties": {"VpcId": {"Ref": "vpc"}, "CidrBlock": f"10.0.{i}.0/24"},
        }
        for i in range(8)
    ]
    resources += [
        {"name": f"bucket-{i}", "type": "AWS::S3::Bucket", "properties": {"BucketName": f"bench-{i}"}} for i in range(3)
    ]
    async with Client(url, elicitation_callback=approve) as client:
        await client.call_tool("create_project", {"project_id": "web"})
        plan = await client.call_tool("plan_changes", {"project_id": "web", "desired_state": {"resources": resources}})
        assert plan.structured_content is not None, plan.content
        plan_id = str(plan.structured_content["plan_id"])
        approved = await client.call_tool("approve_plan", {"plan_id": plan_id})
        assert not approved.is_error, approved.content
        executed = await client.call_tool("execute_plan", {"plan_id": plan_id})
        assert executed.structured_content is not None, executed.content
        assert executed.structured_content["status"] == "executed", executed.content
    return plan_id


async def load(urls: list[str], clients: int, warmup: float, seconds: float, plan_id: str) -> Phase:
    phase = Phase(replicas=len(urls))
    measuring = False
    stop = False

    async def one_client(index: int) -> None:
        async with Client(urls[index % len(urls)]) as client:
            calls = (
                ("list_resources", {"project_id": "web"}),
                ("get_plan", {"plan_id": plan_id}),
            )
            turn = index % 2
            while not stop:
                name, args = calls[turn]
                turn = 1 - turn
                started = time.perf_counter()
                try:
                    result = await client.call_tool(name, args)
                    failure = str(result.content)[:200] if result.is_error else None
                except Exception as exc:  # counted and shown, never hidden
                    failure = f"{type(exc).__name__}: {exc}"[:200]
                if measuring:
                    if failure is None:
                        phase.latencies.append(time.perf_counter() - started)
                    else:
                        phase.errors.append(failure)

    async with anyio.create_task_group() as tg:
        for index in range(clients):
            tg.start_soon(one_client, index)
        await anyio.sleep(warmup)
        measuring = True
        began = time.perf_counter()
        before = sample_cpu()
        await anyio.sleep(seconds)
        measuring = False
        phase.seconds = time.perf_counter() - began
        phase.cpu = {k: v - before.get(k, 0.0) for k, v in sample_cpu().items()}
        stop = True
    return phase


_watched: dict[str, list[int]] = {}


def sample_cpu() -> dict[str, float]:
    sample = {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in _watched.items()}
    sample["load generator"] = own_cpu()
    sample["postgresql"] = postgres_cpu()
    sample["machine"] = machine_busy()
    return sample


def report(phase: Phase) -> None:
    cores = os.cpu_count() or 1
    print(
        f"{phase.replicas} replica(s): {phase.calls} calls in {phase.seconds:.1f} s, errors {len(phase.errors)}, "
        f"throughput {phase.throughput:.1f} calls/s, p50 {phase.quantile(0.5) * 1000:.1f} ms, "
        f"p99 {phase.quantile(0.99) * 1000:.1f} ms"
    )
    cpu = dict(phase.cpu)
    machine = cpu.pop("machine", 0.0)
    used = sum(cpu.values())
    parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(cpu.items()))
    print(
        f"   CPU seconds: {parts}; this benchmark {used:.1f}, the whole machine {machine:.1f} (other processes "
        f"{max(machine - used, 0.0):.1f}), of {cores * phase.seconds:.1f} available ({cores} cores x wall time)"
    )
    for error in sorted(set(phase.errors))[:5]:
        print(f"   error: {error}")


async def main_async(args: argparse.Namespace) -> None:
    database = os.environ.get("INFRA_MCP_BENCH_DATABASE_URL", DEFAULT_DATABASE)
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(database)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        with tempfile.TemporaryDirectory(prefix="infra-mcp-http-load-") as tmp:
            await run(args, Path(tmp), f"{database}{'&' if '?' in database else '?'}search_path={schema}")
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


def copy_logs(tmp: Path, keep: Path) -> None:
    keep.mkdir(parents=True, exist_ok=True)
    for log in tmp.glob("*.log"):
        (keep / log.name).write_bytes(log.read_bytes())


async def run(args: argparse.Namespace, tmp: Path, database_url: str) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("INFRA_MCP_")}
    base.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
    with contextlib.ExitStack() as stack:
        env = {
            **base,
            "INFRA_MCP_DATA_DIR": str(tmp / "data"),
            "INFRA_MCP_DATABASE_URL": database_url,
            "INFRA_MCP_USER": "alice",
            "INFRA_MCP_LOG_LEVEL": args.log_level,
        }
        if args.state == "s3":
            port = free_port()
            moto = stack.enter_context(
                process(
                    [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                    port,
                    "moto S3 server",
                    base,
                    tmp / "moto.log",
                )
            )
            _watched["s3 (moto)"] = [moto.pid]
            endpoint = f"http://127.0.0.1:{port}"
            boto3.client(
                "s3",
                region_name="us-east-1",
                endpoint_url=endpoint,
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
            ).create_bucket(Bucket="bench")
            env.update({"INFRA_MCP_STATE_LOCATION": "s3://bench/infra", "INFRA_MCP_S3_ENDPOINT_URL": endpoint})
        else:
            env["INFRA_MCP_STATE_LOCATION"] = str(tmp / "shared-state")

        def replica() -> str:
            port = free_port()
            proc = stack.enter_context(
                process(
                    [sys.executable, "-m", "infra_mcp", "serve", "--http", f"127.0.0.1:{port}"],
                    port,
                    f"replica on port {port}",
                    env,
                    tmp / f"replica-{port}.log",
                )
            )
            _watched.setdefault("replicas", []).append(proc.pid)
            return f"http://127.0.0.1:{port}/mcp"

        urls = [replica()]
        plan_id = await seed(urls[0])
        print(
            f"{args.clients} clients, list_resources and get_plan in turn, {args.seconds:.0f} s measured after "
            f"{args.warmup:.0f} s warm-up; state in {'a moto S3 server' if args.state == 's3' else 'a shared folder'}, "
            f"projects in PostgreSQL; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} before"
        )
        one = await load(urls, args.clients, args.warmup, args.seconds, plan_id)
        report(one)
        urls += [replica(), replica()]
        three = await load(urls, args.clients, args.warmup, args.seconds, plan_id)
        report(three)
        if args.keep:
            copy_logs(tmp, args.keep)
        ratio = three.throughput / one.throughput if one.throughput else 0.0
        print(
            f"three replicas / one: {ratio:.2f}x throughput (target 1.8x); errors {len(one.errors) + len(three.errors)}"
        )
        print_cpu_bound(one, three)


def print_cpu_bound(one: Phase, three: Phase) -> None:
    """What the CPU allows, from the CPU each call cost (measured above): a replica is one process, so it
    uses one core at most (Python's GIL), and every process of the benchmark shares the machine's cores."""
    cores = os.cpu_count() or 1
    for phase in (one, three):
        done = len(phase.latencies)
        if not done:
            return
        mine = {k: v for k, v in phase.cpu.items() if k != "machine"}
        per_call = sum(mine.values()) / done
        replica = phase.cpu.get("replicas", 0.0) / done
        bound = min(phase.replicas / replica, cores / per_call) if replica and per_call else 0.0
        others = phase.cpu.get("machine", 0.0) - sum(mine.values())
        print(
            f"   {phase.replicas} replica(s): {per_call * 1000:.1f} ms of CPU per call in all "
            f"({replica * 1000:.1f} ms in the replicas): at most {bound:.0f} calls/s on {cores} idle cores "
            f"(measured {phase.throughput:.0f}, while other processes took {max(others, 0.0):.1f} CPU seconds)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time per phase")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured time per phase, clients connected")
    parser.add_argument("--state", choices=["s3", "folder"], default="s3")
    parser.add_argument("--log-level", default="WARNING", help="the replicas' INFRA_MCP_LOG_LEVEL")
    parser.add_argument("--keep", type=Path, help="copy the replicas' and moto's logs into this folder")
    anyio.run(main_async, parser.parse_args())


if __name__ == "__main__":
    main()
