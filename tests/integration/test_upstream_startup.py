"""An upstream that fails or hangs at start-up: the error says why, with the tail of its stderr."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

from infra_mcp.errors import UpstreamUnavailable
from infra_mcp.settings import Settings
from infra_mcp.upstream.factory import make_upstream
from infra_mcp.upstream.resilience import RetryPolicy

VPC = "AWS::EC2::VPC"
FAILS = (
    "import sys\n"
    "for i in range(5000): print('noise line', i, file=sys.stderr)\n"
    "print('RuntimeError: Error retrieving the service reference document: no route to host', file=sys.stderr)\n"
    "sys.exit(1)\n"
)
HANGS = (
    "import sys, time\nprint('downloading the service reference...', file=sys.stderr, flush=True)\ntime.sleep(600)\n"
)


async def first_call_error(tmp_path: Path, script: str, **settings: object) -> UpstreamUnavailable:
    config = Settings(data_dir=tmp_path, upstream_command=sys.executable, upstream_args=["-c", script], **settings)  # type: ignore[arg-type]
    async with make_upstream(config, environ={}, retry=RetryPolicy.disabled()) as upstream:
        with anyio.fail_after(60), pytest.raises(UpstreamUnavailable) as caught:
            await upstream.get_resource(VPC, "vpc-1", region="us-east-1")
    return caught.value


async def test_an_upstream_that_exits_at_start_up_reports_the_tail_of_its_stderr(tmp_path: Path) -> None:
    error = await first_call_error(tmp_path, FAILS)
    assert error.code == "AWS_MCP_001"
    tail = error.details["upstream_stderr"]
    assert "Error retrieving the service reference document" in tail
    assert len(tail) <= 4000
    assert "service reference document" in error.message


async def test_an_upstream_whose_start_hangs_is_reported_as_a_hung_start(tmp_path: Path) -> None:
    error = await first_call_error(tmp_path, HANGS, upstream_start_timeout_seconds=1)
    assert error.code == "AWS_MCP_001"
    assert error.details["reason"] == "start_hung"
    assert "downloading the service reference" in error.details["upstream_stderr"]
