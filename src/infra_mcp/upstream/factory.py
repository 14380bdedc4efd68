"""Build the configured :class:`McpUpstream` from :class:`Settings` (the one place that knows how)."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.server.mcpserver import MCPServer
from mcp_types import Implementation

from infra_mcp.settings import Settings
from infra_mcp.upstream.call_aws import CallAwsDialect
from infra_mcp.upstream.client import McpUpstream
from infra_mcp.upstream.connection import McpConnection
from infra_mcp.upstream.dialects import Dialect
from infra_mcp.upstream.resilience import CircuitBreaker, RetryPolicy
from infra_mcp.upstream.run_script import RunScriptDialect
from infra_mcp.upstream.stderr_tail import StderrTail

_CLIENT_INFO = Implementation(name="infra-mcp", version="0.1.0")
# What a real upstream inherits from our environment (README "Upstream environment"): how it reaches
# AWS (credentials, region, endpoints, proxy, CA bundle), its own settings, and uv's (uvx launches it).
# Anything else stays here: the upstream is another program and needs none of our secrets.
PASSED_NAMES = frozenset(
    {
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "NO_PROXY",
        "https_proxy",
        "http_proxy",
        "no_proxy",
        "REQUESTS_CA_BUNDLE",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "READ_OPERATIONS_ONLY",
        "REQUIRE_MUTATION_CONSENT",
    }
)
PASSED_PREFIXES = ("AWS_", "UV_")  # AWS_ covers AWS_CA_BUNDLE, AWS_ENDPOINT_URL_* and AWS_API_MCP_*
_SECRET_WORD = re.compile(r"(?i)(secret|token|password|passwd|credential|api[-_]?key|access[-_]?key|auth)")


def make_dialect(settings: Settings) -> Dialect:
    if settings.upstream_dialect == "run_script":
        return RunScriptDialect(settings.upstream_tool or "aws___run_script")
    return CallAwsDialect(settings.upstream_tool or "call_aws")


def upstream_env(
    settings: Settings, environ: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment the upstream process gets, on top of the MCP SDK's safe defaults (PATH, HOME...).

    The sandbox gets the data directory and its knobs. A real upstream gets the allow-list
    (:data:`PASSED_NAMES`, ``AWS_*``, ``UV_*``): credentials, profile, region, endpoints, proxy and CA
    bundle, and awslabs' own settings, so it reaches AWS as we would; ``settings.aws_profile``/``aws_region``
    fill in what the environment lacks. ``settings.upstream_env`` (``INFRA_MCP_UPSTREAM_ENV``) comes last
    and wins. Credentials travel only here: never in arguments, never in logs or status.
    """
    environ = os.environ if environ is None else environ
    if settings.uses_sandbox:
        env = {
            "INFRA_MCP_DATA_DIR": str(settings.data_dir),
            "INFRA_MCP_LOG_LEVEL": settings.log_level,
            "INFRA_MCP_AWS_REGION": settings.aws_region,
            "INFRA_MCP_SANDBOX_LATENCY_MS": str(settings.sandbox_latency_ms),
            "INFRA_MCP_SANDBOX_READ_LATENCY_MS": str(settings.sandbox_read_latency_ms),
            "INFRA_MCP_SANDBOX_FAILURE_RATE": str(settings.sandbox_failure_rate),
            "INFRA_MCP_SANDBOX_THROTTLE_RATE": str(settings.sandbox_throttle_rate),
        }
        if settings.sandbox_seed is not None:
            env["INFRA_MCP_SANDBOX_SEED"] = str(settings.sandbox_seed)
    else:
        # Reached only for a real upstream: the sandbox must not inherit AWS credentials.
        env = {k: v for k, v in environ.items() if k in PASSED_NAMES or k.startswith(PASSED_PREFIXES)}
        if settings.aws_profile and "AWS_PROFILE" not in env:
            env["AWS_PROFILE"] = settings.aws_profile
        env.setdefault("AWS_REGION", settings.aws_region)
        env.setdefault("AWS_DEFAULT_REGION", env["AWS_REGION"])
    env.update(settings.upstream_env)
    env.update(extra or {})
    return env


def _flag(env: Mapping[str, str], name: str) -> bool:
    # As awslabs reads its booleans: "true" in any case is on, anything else off.
    return env.get(name, "").strip().lower() == "true"


def redact_args(args: list[str]) -> list[str]:
    """Hide values that look like secrets in a command line (``--api-key X``, ``token=X``)."""
    shown: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:
            shown.append("***")
            hide_next = False
        elif "=" in arg and _SECRET_WORD.search(arg.split("=", 1)[0]):
            shown.append(arg.split("=", 1)[0] + "=***")
        elif arg.startswith("-") and _SECRET_WORD.search(arg):
            shown.append(arg)
            hide_next = True
        else:
            shown.append(arg)
    return shown


def redact_url(url: str) -> str:
    """Drop userinfo and query values from a URL (either may carry a token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    query = "&".join(f"{pair.split('=', 1)[0]}=***" for pair in parts.query.split("&") if pair)
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def describe_target(settings: Settings, env: Mapping[str, str]) -> str:
    """What status() shows as the target: command or URL, env variable *names* only."""
    names = ", ".join(sorted(env))
    if settings.upstream_url:
        return redact_url(settings.upstream_url)
    if settings.upstream_command:
        line = " ".join([settings.upstream_command, *redact_args(list(settings.upstream_args))])
    else:
        line = "python -m infra_mcp.sandbox"
    return f"{line} (env: {names})" if names else line


def stdio_target(settings: Settings, env: dict[str, str]) -> StdioServerParameters:
    """How a stdio upstream is launched: the configured command, or this Python running the sandbox."""
    if settings.upstream_command:
        return StdioServerParameters(command=settings.upstream_command, args=list(settings.upstream_args), env=env)
    return StdioServerParameters(command=sys.executable, args=["-m", "infra_mcp.sandbox"], env=env)


def make_upstream(
    settings: Settings,
    *,
    extra_env: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    retry: RetryPolicy | None = None,
    breaker: CircuitBreaker | None = None,
    server: MCPServer | None = None,
) -> McpUpstream:
    """The upstream the settings describe: a stdio command, an HTTP URL, or the built-in sandbox.

    Nothing is started here: the first call connects (and later calls reconnect if it dies).

    Args:
        settings: The frozen settings.
        extra_env: Extra environment for a stdio upstream (wins over what is derived from settings).
        environ: Where ``AWS_*`` variables are read from (default: this process's environment).
        retry: Retry policy (tests pass ``RetryPolicy.immediate()``).
        breaker: Circuit breaker (tests pass a short cool-down).
        server: An in-process MCP server to use instead (tests only).
    """
    dialect = make_dialect(settings)
    env = upstream_env(settings, environ, extra_env)
    target: StdioServerParameters | str | MCPServer
    if server is not None:
        target, described = server, f"in-process {server.name}"
    elif settings.upstream_url:
        target, described = settings.upstream_url, describe_target(settings, {})
    else:
        target, described = stdio_target(settings, env), describe_target(settings, env)

    stderr = StderrTail() if isinstance(target, StdioServerParameters) else None

    def factory() -> Client:
        # Legacy handshake: the real upstreams are built on mcp 1.x (DESIGN §5), and the sandbox speaks it too.
        if isinstance(target, StdioServerParameters) and stderr is not None:
            transport = stdio_client(target, errlog=stderr.open())
            return Client(transport, mode="legacy", client_info=_CLIENT_INFO, cache=None)
        return Client(target, mode="legacy", client_info=_CLIENT_INFO, cache=None)

    timeout = settings.upstream_timeout_seconds
    # Only a stdio upstream's environment is ours to know; a URL upstream's settings are its own.
    stdio_env = env if isinstance(target, StdioServerParameters) else {}
    return McpUpstream(
        McpConnection(factory, connect_timeout=settings.upstream_start_timeout_seconds, stderr=stderr),
        dialect,
        kind="sandbox" if settings.uses_sandbox else "aws",
        target=described,
        region=settings.aws_region,
        timeout=timeout,
        retry=retry,
        breaker=breaker,
        deadline=settings.upstream_call_deadline_seconds,
        read_only=_flag(stdio_env, "READ_OPERATIONS_ONLY"),
        mutation_consent=_flag(stdio_env, "REQUIRE_MUTATION_CONSENT"),
    )
