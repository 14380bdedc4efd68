"""Benchmark: execute a 200-resource, 5-level plan against the sandbox with parallelism 10.

Run::

    .venv/bin/python benchmarks/execute_parallel.py                 # sandbox over stdio (the real path)
    .venv/bin/python benchmarks/execute_parallel.py --in-process    # the sandbox's MCP server in-process
    .venv/bin/python benchmarks/execute_parallel.py --direct        # the simulated cloud, no MCP at all

Everything is real except AWS: SQLite project store, local-folder state store (journal and
checkpoints on disk), the MCP upstream client, and the sandbox (``python -m infra_mcp.sandbox``
with ``INFRA_MCP_SANDBOX_LATENCY_MS=50``).

The lower bound, honestly: no Cloud Control operation can finish faster than

    t_op = latency + (create call) + (one status poll that sees it done)

where each call costs the measured round trip ``rtt`` of a cheap call over the same upstream (the
SUCCESS event's ResourceModel carries the properties, so no GetResource is needed; the durable
journal write before each request is not counted, its own line below shows what it adds). With
``P`` slots and ``N`` operations on dependency chains of ``D`` levels, any schedule takes at least
``max(D * t_op, ceil(N / P) * t_op)`` (the critical path, and the work spread over all slots); Graham's
list-scheduling argument says a greedy schedule is within ``N * t_op / P + D * t_op`` of it. The
benchmark prints the wall time, that bound and their ratio (target: at most 1.2).
"""

from __future__ import annotations

import argparse
import contextlib
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
from infra_mcp.catalog.prices import bundled_pricing
from infra_mcp.domain.desired import parse_desired_state
from infra_mcp.domain.integrity import Notary
from infra_mcp.domain.plan import ApprovalMethod
from infra_mcp.domain.planner import make_plan
from infra_mcp.domain.project import ApprovalSettings, Member, Project, ProjectSettings, Role
from infra_mcp.logs import configure_logging
from infra_mcp.services.approvals import ApprovalService
from infra_mcp.services.execution import ExecutionService
from infra_mcp.services.execution.operations import PollPolicy
from infra_mcp.services.secrets import SecretSealer
from infra_mcp.settings import Settings
from infra_mcp.stores.sqlite import SqliteProjectStore
from infra_mcp.stores.state_factory import StateStoreRegistry
from infra_mcp.upstream.factory import make_upstream

LEVELS = 5
WIDTH = 40  # 5 x 40 = 200 resources


def desired_state() -> list[dict[str, Any]]:
    """40 chains of 5 levels (VPC -> Subnet -> 3 SSM parameters), each link also tied to a neighbour."""
    resources: list[dict[str, Any]] = []
    for i in range(WIDTH):
        resources.append({"name": f"vpc-{i}", "type": "AWS::EC2::VPC", "properties": {"CidrBlock": f"10.{i}.0.0/16"}})
        resources.append(
            {
                "name": f"subnet-{i}",
                "type": "AWS::EC2::Subnet",
                "properties": {"VpcId": {"Ref": f"vpc-{i}"}, "CidrBlock": f"10.{i}.1.0/24"},
                "depends_on": [f"vpc-{(i + 1) % WIDTH}"],
            }
        )
        previous = f"subnet-{i}"
        for level in range(2, LEVELS):
            name = f"param-{level}-{i}"
            neighbour = f"subnet-{(i + 1) % WIDTH}" if level == 2 else f"param-{level - 1}-{(i + 1) % WIDTH}"
            resources.append(
                {
                    "name": name,
                    "type": "AWS::SSM::Parameter",
                    "properties": {"Type": "String", "Value": {"Ref": previous}},
                    "depends_on": [neighbour],
                    "tags": {"level": str(level)},
                }
            )
            previous = name
    return resources


class DirectSandbox:
    """The ``Upstream`` port straight over the sandbox's simulated Cloud Control (no MCP, no subprocess).

    Isolates the executor's scheduling from the MCP stack's per-call CPU cost; AWS's answers are
    parsed by the same functions the real upstream client uses.
    """

    def __init__(self, latency_ms: int) -> None:
        from infra_mcp.sandbox.cloud import SandboxCloud
        from infra_mcp.sandbox.config import SandboxConfig

        self.cloud = SandboxCloud(config=SandboxConfig(latency_ms=latency_ms))

    def _call(self, operation: str, params: dict[str, Any], region: str) -> dict[str, Any]:
        from infra_mcp.sandbox.errors import CloudControlError
        from infra_mcp.upstream.aws_errors import map_aws_error

        try:
            return self.cloud.call(operation, params, region=region)
        except CloudControlError as exc:
            raise map_aws_error(exc.code, exc.message, operation=operation) from None

    async def create_resource(
        self, type_name: str, desired_state: dict[str, Any], *, region: str, client_token: str | None = None
    ) -> Any:
        from infra_mcp.upstream.operations import progress_event

        params = {"TypeName": type_name, "DesiredState": json.dumps(desired_state), "ClientToken": client_token}
        return progress_event(self._call("CreateResource", params, region), operation="CreateResource")

    async def get_resource(self, type_name: str, identifier: str, *, region: str) -> Any:
        from infra_mcp.upstream.operations import resource_description

        answer = self._call("GetResource", {"TypeName": type_name, "Identifier": identifier}, region)
        return resource_description(answer["ResourceDescription"], type_name=type_name, operation="GetResource")

    async def get_request_status(self, request_token: str, *, region: str) -> Any:
        from infra_mcp.upstream.operations import progress_event

        answer = self._call("GetResourceRequestStatus", {"RequestToken": request_token}, region)
        return progress_event(answer, operation="GetResourceRequestStatus")

    def change_refusal(self) -> None:
        return None  # the sandbox takes changes

    async def caller_identity(self, *, region: str) -> Any:
        from infra_mcp.domain.cloud import CallerIdentity

        return CallerIdentity(account="000000000000", arn="arn:aws:iam::000000000000:user/bench", user_id="bench")

    async def aclose(self) -> None:
        return None


async def measure_rtt(upstream: Any, samples: int = 20) -> float:
    """Median round trip of a cheap Cloud Control call (a GetResource that finds nothing)."""
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        # A NotFound answer is the point: only the round trip is timed.
        with contextlib.suppress(Exception):
            await upstream.get_resource("AWS::EC2::VPC", "vpc-none", region="us-east-1")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def measure_journal_write(store: Any, project_id: str, samples: int = 10) -> float:
    """Median time of one durable journal write (what the executor does before sending each request)."""
    from infra_mcp.domain.state import Journal

    times = []
    for _ in range(samples):
        start = time.perf_counter()
        await store.write_journal(Journal(project_id=project_id))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def run(args: argparse.Namespace) -> None:
    configure_logging("WARNING")
    latency = args.latency_ms / 1000.0
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        settings = Settings(data_dir=data, sandbox_latency_ms=args.latency_ms, user="bench")
        server = None
        if args.direct:
            upstream: Any = DirectSandbox(args.latency_ms)
        elif args.in_process:
            from infra_mcp.sandbox.cloud import SandboxCloud
            from infra_mcp.sandbox.config import SandboxConfig
            from infra_mcp.sandbox.mcp_server import build_server

            server = build_server(SandboxCloud(config=SandboxConfig(latency_ms=args.latency_ms)))
        if not args.direct:
            upstream = make_upstream(settings, server=server)
        store = SqliteProjectStore(data / "bench.db")
        await store.open()
        try:
            states = StateStoreRegistry(settings)
            catalog = default_catalog()
            project = Project(
                id="bench",
                name="bench",
                owner="bench",
                members=[Member(user="bench", role=Role.OWNER)],
                settings=ProjectSettings(approval=ApprovalSettings(require_human_confirmation=False)),
            )
            await store.create_project(project)
            specs = parse_desired_state({"resources": desired_state()}, catalog)
            plan = make_plan(
                project_id="bench",
                plan_id="plan-bench",
                author="bench",
                description="benchmark",
                kind="full",
                desired=specs,
                current=None,
                catalog=catalog,
                full=True,
                lint=False,
                pricing=bundled_pricing(),
            )
            notary = Notary(b"benchmark server key, 32 bytes!!")
            await store.save_plan(notary.sign_plan(plan))
            await ApprovalService(store, states, notary=notary).approve(
                plan.id, "bench", method=ApprovalMethod.NO_CONFIRMATION
            )
            rtt = await measure_rtt(upstream)
            journal_write = await measure_journal_write(states.for_project(project), project.id)
            # Without a RetryAfter, poll first just after the sandbox's latency has passed, then back
            # off gently (the sandbox answers RetryAfter, which the executor follows instead).
            policy = PollPolicy(initial=latency * 1.1, factor=1.5, maximum=max(latency, 0.2), throttle_backoff=0.05)
            service = ExecutionService(
                store,
                states,
                upstream,
                catalog,
                SecretSealer(data / "key"),
                notary=notary,
                parallelism=args.parallelism,
                poll=policy,
            )
            start, cpu_start = time.perf_counter(), time.process_time()
            done = await service.execute(plan.id, "bench")
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        finally:
            await store.close()
            await upstream.aclose()

    n = len(plan.actionable_changes)
    t_op = latency + 2 * rtt
    critical = LEVELS * t_op
    work = math.ceil(n / args.parallelism) * t_op
    bound = max(critical, work)
    path = "stdio subprocess (python -m infra_mcp.sandbox) through the MCP upstream client"
    if args.in_process:
        path = "the sandbox's MCP server in-process, through the MCP upstream client"
    if args.direct:
        path = "the sandbox's simulated cloud in-process, called directly (no MCP)"
    print(f"sandbox: {path}, latency {args.latency_ms} ms, parallelism {args.parallelism}")
    print(f"plan: {n} creates, {LEVELS} levels; status: {done.status.value}")
    print(f"round trip of one call: {rtt * 1000:.1f} ms; fastest possible operation t_op: {t_op * 1000:.1f} ms")
    print(f"critical path bound {critical:.2f} s; work bound ceil({n}/{args.parallelism}) x t_op = {work:.2f} s")
    durable = math.ceil(n / args.parallelism) * (t_op + journal_write)
    print(
        f"one durable journal write: {journal_write * 1000:.1f} ms (made before each request is sent); "
        f"work bound counting it: {durable:.2f} s, ratio to it: {wall / durable:.2f}"
    )
    print(f"CPU time of this process during the execution: {cpu:.2f} s")
    print(f"wall time: {wall:.2f} s; lower bound: {bound:.2f} s; ratio: {wall / bound:.2f} (target <= 1.2)")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--parallelism", type=int, default=10)
    parser.add_argument("--in-process", action="store_true", help="run the sandbox's MCP server in this process")
    parser.add_argument("--direct", action="store_true", help="call the simulated cloud directly, without MCP")
    anyio.run(run, parser.parse_args())


if __name__ == "__main__":
    main()
