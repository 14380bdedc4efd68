"""``infra-mcp sandbox``: run the simulated Cloud Control as a stdio MCP server or an HTTP endpoint.

Knobs come from ``INFRA_MCP_*`` environment variables (through :class:`~infra_mcp.settings.Settings`)
and command-line flags, the flags winning. stdout is the MCP channel in stdio mode, so everything
here logs to stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import structlog
from pydantic import ValidationError

from infra_mcp.logs import configure_logging
from infra_mcp.sandbox.cloud import SandboxCloud
from infra_mcp.sandbox.config import SandboxConfig, mutation_name
from infra_mcp.sandbox.identity import SANDBOX_ACCOUNT_ID
from infra_mcp.sandbox.world import FileWorldStore
from infra_mcp.settings import Settings

_log = structlog.get_logger("infra_mcp.sandbox")


def _pair(convert: Callable[[str], Any], what: str) -> Callable[[str], tuple[str, Any]]:
    def parse(text: str) -> tuple[str, Any]:
        key, sep, raw = text.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        try:
            return key, convert(raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None

    return parse


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("a rate is between 0 and 1")
    return value


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()):  # int() would read "٨٠" as 80
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infra-mcp sandbox",
        description=(
            "Simulated AWS Cloud Control API (account 000000000000). Default: an MCP server on stdio with "
            "the call_aws tool. Flags override INFRA_MCP_SANDBOX_* environment variables."
        ),
    )
    parser.add_argument(
        "--http",
        type=_host_port,
        metavar="HOST:PORT",
        help="serve Cloud Control's AWS JSON 1.0 protocol on a loopback address instead",
    )
    parser.add_argument(
        "--data-dir", type=Path, help="data directory; the world is <data-dir>/sandbox/cloud.json (INFRA_MCP_DATA_DIR)"
    )
    parser.add_argument(
        "--latency-ms", type=int, help="time a mutation stays IN_PROGRESS (INFRA_MCP_SANDBOX_LATENCY_MS)"
    )
    parser.add_argument(
        "--read-latency-ms",
        type=int,
        help="time GetResource and ListResources take to answer (INFRA_MCP_SANDBOX_READ_LATENCY_MS)",
    )
    parser.add_argument(
        "--operation-latency-ms",
        type=_pair(int, "OPERATION=MS"),
        action="append",
        default=[],
        metavar="OPERATION=MS",
        help="latency of one mutation (create, update or delete); repeatable",
    )
    parser.add_argument(
        "--throttle-rate",
        type=_rate,
        help="probability of ThrottlingException per call (INFRA_MCP_SANDBOX_THROTTLE_RATE)",
    )
    parser.add_argument(
        "--failure-rate", type=_rate, help="probability that a mutation ends FAILED (INFRA_MCP_SANDBOX_FAILURE_RATE)"
    )
    parser.add_argument(
        "--failure-rate-type",
        type=_pair(_rate, "TYPE=RATE"),
        action="append",
        default=[],
        metavar="TYPE=RATE",
        help="failure rate for one resource type, e.g. AWS::EC2::VPC=0.5; repeatable",
    )
    parser.add_argument(
        "--seed", type=int, help="seed of the fault generator, for reproducible runs (INFRA_MCP_SANDBOX_SEED)"
    )
    parser.add_argument("--region", help="default region when a command names none (INFRA_MCP_AWS_REGION)")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        "data_dir": args.data_dir,
        "sandbox_latency_ms": args.latency_ms,
        "sandbox_read_latency_ms": args.read_latency_ms,
        "sandbox_throttle_rate": args.throttle_rate,
        "sandbox_failure_rate": args.failure_rate,
        "sandbox_seed": args.seed,
        "aws_region": args.region,
    }
    return Settings(**{key: value for key, value in overrides.items() if value is not None})


def build_cloud(settings: Settings, args: argparse.Namespace | None = None) -> SandboxCloud:
    """The simulated cloud the settings (and per-operation / per-type flags) describe, persisted in the data dir."""
    operation_latency = {mutation_name(op): ms for op, ms in (args.operation_latency_ms if args else [])}
    config = SandboxConfig(
        latency_ms=settings.sandbox_latency_ms,
        operation_latency_ms=operation_latency,
        throttle_rate=settings.sandbox_throttle_rate,
        failure_rate=settings.sandbox_failure_rate,
        type_failure_rates=dict(args.failure_rate_type if args else []),
        seed=settings.sandbox_seed,
        default_region=settings.aws_region,
        read_latency_ms=settings.sandbox_read_latency_ms,
    )
    return SandboxCloud(FileWorldStore(settings.sandbox_world_path), config=config)


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox until its client goes away (stdio) or it is interrupted (HTTP).

    Returns:
        The process exit status: 0 on a clean stop, 2 for bad configuration.
    """
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
        cloud = build_cloud(settings, args)
        if args.http:
            from infra_mcp.sandbox.http import ensure_loopback  # stdio mode need not import starlette

            ensure_loopback(args.http[0])
    except (ValidationError, ValueError) as exc:
        print(f"infra-mcp sandbox: invalid configuration: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    _log.info(
        "sandbox_starting",
        mode="http" if args.http else "stdio",
        endpoint=f"http://{args.http[0]}:{args.http[1]}" if args.http else None,
        world=str(settings.sandbox_world_path),
        account=SANDBOX_ACCOUNT_ID,
        latency_ms=cloud.config.latency_ms,
        throttle_rate=cloud.config.throttle_rate,
        failure_rate=cloud.config.failure_rate,
        seed=cloud.config.seed,
    )
    try:
        if args.http:
            from infra_mcp.sandbox.http import serve

            host, port = args.http
            serve(cloud, host, port)
        else:
            from infra_mcp.sandbox.mcp_server import build_server  # keep --help fast

            anyio.run(build_server(cloud).run_stdio_async)
    except KeyboardInterrupt:
        pass
    return 0
