"""Retries, backoff, the circuit breaker, time-outs and request waiting, against fake transports."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
import stamina.instrumentation
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, TextContent

from infra_mcp.domain.cloud import OperationStatus, ProgressEvent
from infra_mcp.errors import InfraError, NotFound, UpstreamAWSError, UpstreamThrottled, UpstreamUnavailable
from infra_mcp.upstream.call_aws import CallAwsDialect
from infra_mcp.upstream.client import McpUpstream
from infra_mcp.upstream.connection import CallTimedOut, ConnectFailed, ConnectionLost, McpConnection
from infra_mcp.upstream.resilience import CircuitBreaker, RetryPolicy, full_jitter_delay, retrying
from infra_mcp.upstream.waiting import wait_for_request
from tests.fakes.aws_mcp_servers import aws_error_entry, ok_entry

VPC = "AWS::EC2::VPC"
EVENT = {
    "TypeName": VPC,
    "Identifier": "vpc-1",
    "RequestToken": "tok-1",
    "Operation": "CREATE",
    "OperationStatus": "IN_PROGRESS",
}


def answer(entry: dict[str, Any]) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text="{}")], structured_content={"result": [entry]})


OK_EVENT = answer(ok_entry("aws ...", {"ProgressEvent": EVENT}))
OK_GET = answer(ok_entry("aws ...", {"ResourceDescription": {"Identifier": "vpc-1", "Properties": "{}"}}))
THROTTLED = answer(aws_error_entry("aws ...", "ThrottlingException", "Rate exceeded"))
INTERNAL = answer(aws_error_entry("aws ...", "ServiceInternalErrorException", "oops", status=500))
NOT_FOUND = answer(aws_error_entry("aws ...", "ResourceNotFoundException", "gone", status=404))


class ScriptedTransport:
    """Answers each call with the next scripted outcome (a result, or an exception to raise)."""

    def __init__(self, *outcomes: CallToolResult | Exception) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[dict[str, Any]] = []
        self.closed = False

    @property
    def connected(self) -> bool:
        return True

    async def call_tool(self, name: str, arguments: dict[str, Any], *, timeout: float) -> CallToolResult:
        self.calls.append(arguments)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def aclose(self) -> None:
        self.closed = True


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def upstream(transport: Any, *, attempts: int = 4, breaker: CircuitBreaker | None = None) -> McpUpstream:
    return McpUpstream(
        transport,
        CallAwsDialect(),
        kind="sandbox",
        target="fake",
        region="us-east-1",
        retry=RetryPolicy.immediate(attempts),
        breaker=breaker or CircuitBreaker(threshold=100),
    )


# ---- what is retried --------------------------------------------------------------------------


async def test_a_throttled_read_is_retried_until_it_succeeds() -> None:
    transport = ScriptedTransport(THROTTLED, THROTTLED, OK_GET)
    desc = await upstream(transport).get_resource(VPC, "vpc-1", region="us-east-1")
    assert desc.identifier == "vpc-1"
    assert len(transport.calls) == 3


async def test_a_throttled_create_without_client_token_is_retried_because_it_never_ran() -> None:
    transport = ScriptedTransport(THROTTLED, OK_EVENT)
    event = await upstream(transport).create_resource(VPC, {}, region="us-east-1")
    assert event.request_token == "tok-1"
    assert len(transport.calls) == 2


async def test_throttling_that_persists_ends_as_aws_mcp_003_after_the_allowed_attempts() -> None:
    transport = ScriptedTransport(THROTTLED)
    with pytest.raises(UpstreamThrottled) as caught:
        await upstream(transport, attempts=3).get_resource(VPC, "vpc-1", region="us-east-1")
    assert caught.value.code == "AWS_MCP_003"
    assert caught.value.details["aws_error_code"] == "ThrottlingException"
    assert caught.value.details["attempts"] == 3
    assert len(transport.calls) == 3


async def test_a_create_without_client_token_is_not_repeated_when_the_connection_dies_mid_call() -> None:
    transport = ScriptedTransport(ConnectionLost("closed"), OK_EVENT)
    with pytest.raises(UpstreamUnavailable) as caught:
        await upstream(transport).create_resource(VPC, {}, region="us-east-1")
    assert caught.value.code == "AWS_MCP_001"
    assert caught.value.details["may_have_executed"] is True
    assert len(transport.calls) == 1


async def test_a_create_with_client_token_is_repeated_when_the_connection_dies_mid_call() -> None:
    transport = ScriptedTransport(ConnectionLost("closed"), CallTimedOut("slow"), OK_EVENT)
    event = await upstream(transport).create_resource(VPC, {}, region="us-east-1", client_token="ct-1")
    assert event.identifier == "vpc-1"
    assert [c["cli_command"].count("--client-token ct-1") for c in transport.calls] == [1, 1, 1]


async def test_a_mutation_is_retried_when_the_connection_could_not_even_be_made() -> None:
    transport = ScriptedTransport(ConnectFailed("spawn failed"), OK_EVENT)
    event = await upstream(transport).delete_resource(VPC, "vpc-1", region="us-east-1")
    assert event.request_token == "tok-1"


async def test_a_read_that_timed_out_is_retried() -> None:
    transport = ScriptedTransport(CallTimedOut("slow"), OK_GET)
    assert (await upstream(transport).get_resource(VPC, "vpc-1", region="us-east-1")).identifier == "vpc-1"


async def test_an_aws_internal_error_is_retried_only_for_idempotent_calls() -> None:
    transport = ScriptedTransport(INTERNAL, OK_EVENT)
    with pytest.raises(UpstreamAWSError) as caught:
        await upstream(transport).delete_resource(VPC, "vpc-1", region="us-east-1")
    assert caught.value.code == "AWS_MCP_002"
    assert len(transport.calls) == 1

    transport = ScriptedTransport(INTERNAL, OK_EVENT)
    await upstream(transport).delete_resource(VPC, "vpc-1", region="us-east-1", client_token="ct")
    assert len(transport.calls) == 2


async def test_a_definite_aws_answer_is_never_retried() -> None:
    transport = ScriptedTransport(NOT_FOUND)
    with pytest.raises(NotFound) as caught:
        await upstream(transport).get_resource(VPC, "vpc-1", region="us-east-1")
    assert caught.value.code == "RESOURCE_001"
    assert len(transport.calls) == 1


async def test_bad_input_fails_before_any_call_reaches_the_upstream() -> None:
    transport = ScriptedTransport(OK_GET)
    with pytest.raises(InfraError) as caught:
        await upstream(transport).get_resource("not a type", "vpc-1", region="us-east-1")
    assert caught.value.code == "VALIDATION_001"
    assert transport.calls == []


# ---- backoff ----------------------------------------------------------------------------------


def test_full_jitter_delays_stay_within_the_exponential_ceiling_and_vary() -> None:
    rng = random.Random(7)
    delays = [full_jitter_delay(n, base=0.1, cap=1.0, rng=rng) for n in range(1, 9) for _ in range(20)]
    ceilings = [min(1.0, 0.1 * 2 ** (n - 1)) for n in range(1, 9) for _ in range(20)]
    assert all(0.0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) > 100
    assert full_jitter_delay(500, base=0.1, cap=1.0, rng=rng) <= 1.0


@pytest.fixture
def retry_waits() -> Iterator[list[float]]:
    waits: list[float] = []
    previous = stamina.instrumentation.get_on_retry_hooks()
    stamina.instrumentation.set_on_retry_hooks([lambda details: waits.append(details.wait_for)])
    yield waits
    stamina.instrumentation.set_on_retry_hooks(previous)


async def test_retries_wait_the_full_jitter_delays(retry_waits: list[float]) -> None:
    policy = RetryPolicy(attempts=4, base_delay=0.001, max_delay=0.002, rng=random.Random(3))
    expected_rng = random.Random(3)
    expected = [full_jitter_delay(n, base=0.001, cap=0.002, rng=expected_rng) for n in (1, 2, 3)]
    failures = 0

    async def flaky() -> str:
        nonlocal failures
        failures += 1
        if failures < 4:
            raise UpstreamThrottled("slow down")
        return "ok"

    assert await retrying(flaky, policy=policy, should_retry=lambda e: isinstance(e, UpstreamThrottled)) == "ok"
    assert retry_waits == pytest.approx(expected)


async def test_a_disabled_policy_tries_once() -> None:
    calls = 0

    async def fails() -> None:
        nonlocal calls
        calls += 1
        raise UpstreamThrottled("x")

    with pytest.raises(UpstreamThrottled):
        await retrying(fails, policy=RetryPolicy.disabled(), should_retry=lambda e: True)
    assert calls == 1


# ---- circuit breaker -------------------------------------------------------------------------------


async def test_the_circuit_opens_after_consecutive_connection_failures_and_then_fails_fast() -> None:
    clock = FakeClock()
    transport = ScriptedTransport(ConnectFailed("dead"))
    up = upstream(transport, attempts=1, breaker=CircuitBreaker(threshold=3, cooldown=30, clock=clock))
    for _ in range(3):
        with pytest.raises(UpstreamUnavailable):
            await up.get_resource(VPC, "vpc-1", region="us-east-1")
    assert len(transport.calls) == 3
    with pytest.raises(UpstreamUnavailable) as caught:
        await up.get_resource(VPC, "vpc-1", region="us-east-1")
    assert caught.value.code == "AWS_MCP_001"
    assert caught.value.details["circuit"] == "open"
    assert len(transport.calls) == 3, "an open circuit does not touch the upstream"
    status = await up.status()
    assert (status.circuit, status.healthy, status.consecutive_failures) == ("open", False, 3)
    assert status.last_error is not None
    assert status.last_error.startswith("AWS_MCP_001")


async def test_after_the_cooldown_one_probe_goes_through_and_its_success_closes_the_circuit() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=1, cooldown=30, clock=clock)
    transport = ScriptedTransport(ConnectFailed("dead"), OK_GET)
    up = upstream(transport, attempts=1, breaker=breaker)
    with pytest.raises(UpstreamUnavailable):
        await up.get_resource(VPC, "vpc-1", region="us-east-1")
    assert breaker.state == "open"
    clock.now += 31
    assert breaker.state == "half_open"
    await up.get_resource(VPC, "vpc-1", region="us-east-1")
    assert breaker.state == "closed"
    assert breaker.consecutive_failures == 0


def test_a_failed_probe_reopens_the_circuit_for_another_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=2, cooldown=10, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 10
    assert breaker.before_call() is True
    breaker.record_failure()
    assert breaker.state == "open"
    clock.now += 9
    with pytest.raises(UpstreamUnavailable):
        breaker.before_call()


def test_half_open_admits_only_one_probe_at_a_time() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=1, cooldown=5, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.before_call() is True
    with pytest.raises(UpstreamUnavailable) as caught:
        breaker.before_call()
    assert caught.value.details["circuit"] == "half_open"
    breaker.release_probe()
    assert breaker.before_call() is True


async def test_aws_errors_do_not_count_against_the_circuit() -> None:
    breaker = CircuitBreaker(threshold=2)
    up = upstream(ScriptedTransport(NOT_FOUND), attempts=1, breaker=breaker)
    for _ in range(3):
        with pytest.raises(NotFound):
            await up.get_resource(VPC, "vpc-1", region="us-east-1")
    assert breaker.state == "closed"


# ---- the real connection: time-outs, unreachable upstreams ------------------------------------------


def slow_server() -> MCPServer:
    server = MCPServer("slow")

    @server.tool()
    async def call_aws(cli_command: str) -> list[dict[str, Any]]:
        if "get-caller-identity" in cli_command:
            who = {"UserId": "U", "Account": "000000000000", "Arn": "arn:aws:iam::000000000000:user/x"}
            return [ok_entry(cli_command, who)]
        await anyio.sleep(30)
        return []

    return server


async def test_a_call_without_answer_times_out_as_aws_mcp_001_and_the_connection_stays_usable() -> None:
    server = slow_server()
    connection = McpConnection(lambda: Client(server, mode="legacy", cache=None), connect_timeout=5)
    up = McpUpstream(
        connection,
        CallAwsDialect(),
        kind="sandbox",
        target="slow",
        region="us-east-1",
        timeout=0.2,
        retry=RetryPolicy.immediate(2),
    )
    async with up:
        with anyio.fail_after(5):
            with pytest.raises(UpstreamUnavailable) as caught:
                await up.get_resource(VPC, "vpc-1", region="us-east-1")
        assert caught.value.code == "AWS_MCP_001"
        assert caught.value.details["reason"] == "CallTimedOut"
        assert caught.value.details["attempts"] == 2
        assert (await up.caller_identity(region="us-east-1")).account == "000000000000"


async def test_an_upstream_that_cannot_start_is_aws_mcp_001_quickly() -> None:
    from mcp import StdioServerParameters

    params = StdioServerParameters(command="/nonexistent/aws-mcp-server")
    connection = McpConnection(lambda: Client(params, mode="legacy", cache=None), connect_timeout=5)
    up = McpUpstream(
        connection, CallAwsDialect(), kind="aws", target="x", region="us-east-1", retry=RetryPolicy.immediate(2)
    )
    async with up:
        with anyio.fail_after(5):
            with pytest.raises(UpstreamUnavailable) as caught:
                await up.get_resource(VPC, "vpc-1", region="us-east-1")
    assert caught.value.code == "AWS_MCP_001"
    assert caught.value.details["reason"] == "ConnectFailed"
    assert caught.value.details["may_have_executed"] is False
    assert connection.connected is False


# ---- waiting on a request token -------------------------------------------------------------------


class StatusUpstream:
    """Answers get_request_status from a script of statuses."""

    def __init__(self, *events: ProgressEvent) -> None:
        self.events = list(events)
        self.polls = 0

    async def get_request_status(self, request_token: str, *, region: str) -> ProgressEvent:
        self.polls += 1
        return self.events.pop(0)


def event(status: str, **extra: Any) -> ProgressEvent:
    return ProgressEvent(
        type_name=VPC, request_token="tok-1", operation="CREATE", operation_status=OperationStatus(status), **extra
    )


class Timeline:
    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds

    def clock(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self.t)


async def test_waiting_polls_with_doubling_delays_up_to_the_maximum() -> None:
    up = StatusUpstream(*[event("IN_PROGRESS")] * 5, event("SUCCESS", identifier="vpc-9"))
    tl = Timeline()
    final = await wait_for_request(
        up, event("IN_PROGRESS"), region="us-east-1", poll_initial=0.1, poll_max=0.5,
        sleep=tl.sleep, clock=tl.clock, now=tl.now,
    )  # fmt: skip
    assert final.operation_status is OperationStatus.SUCCESS
    assert final.identifier == "vpc-9"
    assert tl.slept == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5, 0.5])


async def test_waiting_honours_retry_after() -> None:
    tl = Timeline()
    retry_at = tl.now() + timedelta(seconds=3)
    up = StatusUpstream(event("FAILED", error_code="AlreadyExists"))
    final = await wait_for_request(
        up, event("IN_PROGRESS", retry_after=retry_at), region="us-east-1", poll_initial=0.1,
        sleep=tl.sleep, clock=tl.clock, now=tl.now,
    )  # fmt: skip
    assert tl.slept == pytest.approx([3.0])
    assert final.error_code == "AlreadyExists"


async def test_waiting_on_a_finished_request_does_not_poll() -> None:
    up = StatusUpstream()
    done = event("SUCCESS")
    assert await wait_for_request(up, done, region="us-east-1") is done
    assert up.polls == 0


async def test_waiting_gives_up_after_the_timeout_naming_the_request_token() -> None:
    tl = Timeline()
    up = StatusUpstream(*[event("IN_PROGRESS")] * 100)
    with pytest.raises(UpstreamUnavailable) as caught:
        await wait_for_request(
            up, event("IN_PROGRESS"), region="us-east-1", poll_initial=1, poll_max=1, timeout=5,
            sleep=tl.sleep, clock=tl.clock, now=tl.now,
        )  # fmt: skip
    assert caught.value.code == "AWS_MCP_001"
    assert caught.value.details["request_token"] == "tok-1"
    assert tl.t == pytest.approx(5)


def test_the_scripted_answers_are_valid_call_aws_shapes() -> None:
    assert json.loads(OK_EVENT.structured_content["result"][0]["response"]["as_json"])["ProgressEvent"] == EVENT  # type: ignore[index]


# ---- the AWS endpoint itself unreachable (the upstream runs, AWS does not answer) ----------------

UNREACHABLE = answer(
    {
        "cli_command": "aws ...",
        "error": 'Error while executing the command: Could not connect to the endpoint URL: "http://127.0.0.1:9/"',
    }
)
READ_TIMEOUT = answer(
    {
        "cli_command": "aws ...",
        "error": 'Error while executing the command: Read timeout on endpoint URL: "https://cloudcontrolapi.us-east-1.amazonaws.com/"',
    }
)


async def test_an_unreachable_aws_endpoint_is_retried_and_then_reported_as_aws_mcp_001() -> None:
    transport = ScriptedTransport(UNREACHABLE)
    with pytest.raises(UpstreamUnavailable) as caught:
        await upstream(transport, attempts=3).create_resource(VPC, {}, region="us-east-1")
    assert caught.value.code == "AWS_MCP_001"
    assert caught.value.details["reason"] == "endpoint_unreachable"
    assert caught.value.details["may_have_executed"] is False
    assert len(transport.calls) == 3


async def test_an_unreachable_aws_endpoint_that_comes_back_is_retried_to_success() -> None:
    transport = ScriptedTransport(UNREACHABLE, OK_EVENT)
    event = await upstream(transport).create_resource(VPC, {}, region="us-east-1")
    assert event.request_token == "tok-1"
    assert len(transport.calls) == 2


async def test_a_read_timeout_on_a_create_without_client_token_is_not_repeated_and_may_have_run() -> None:
    transport = ScriptedTransport(READ_TIMEOUT, OK_EVENT)
    with pytest.raises(UpstreamUnavailable) as caught:
        await upstream(transport).create_resource(VPC, {}, region="us-east-1")
    assert caught.value.code == "AWS_MCP_001"
    assert caught.value.details["may_have_executed"] is True
    assert len(transport.calls) == 1


# ---- a total deadline per call, and a hung upstream replaced -------------------------------------


class HangingTransport:
    """Every call 'hangs' until its time-out: the fake clock moves by that much, then CallTimedOut."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.timeouts: list[float] = []

    @property
    def connected(self) -> bool:
        return True

    async def call_tool(self, name: str, arguments: dict[str, Any], *, timeout: float) -> CallToolResult:
        self.timeouts.append(timeout)
        self.clock.now += timeout
        raise CallTimedOut(f"No answer from the upstream within {timeout:g}s.")

    async def aclose(self) -> None:
        return None


async def test_retries_of_a_call_without_answer_stop_at_the_total_deadline() -> None:
    clock = FakeClock()
    transport = HangingTransport(clock)
    up = McpUpstream(
        transport,
        CallAwsDialect(),
        kind="aws",
        target="hung",
        region="us-east-1",
        timeout=60,
        deadline=100,
        retry=RetryPolicy.immediate(5),
        breaker=CircuitBreaker(threshold=100),
        clock=clock,
    )
    with pytest.raises(UpstreamUnavailable) as caught:
        await up.create_resource(VPC, {}, region="us-east-1", client_token="ct-1")
    assert caught.value.code == "AWS_MCP_001"
    assert transport.timeouts == [60, 40]
    assert caught.value.details["outcome_unknown"] is True
    assert caught.value.details["deadline_seconds"] == 100


async def test_a_call_without_answer_replaces_the_hung_upstream_before_the_retry() -> None:
    server = slow_server()
    clients: list[Client] = []

    def factory() -> Client:
        clients.append(Client(server, mode="legacy", cache=None))
        return clients[-1]

    connection = McpConnection(factory, connect_timeout=5)
    async with McpUpstream(
        connection, CallAwsDialect(), kind="sandbox", target="slow", region="us-east-1", timeout=0.2,
        retry=RetryPolicy.immediate(2),
    ) as up:  # fmt: skip
        with anyio.fail_after(5), pytest.raises(UpstreamUnavailable):
            await up.get_resource(VPC, "vpc-1", region="us-east-1")
    assert len(clients) == 2
