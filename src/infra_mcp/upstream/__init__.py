"""MCP client of the upstream AWS MCP server (DESIGN §5): the ``Upstream`` port's adapter."""

from infra_mcp.upstream.client import McpUpstream
from infra_mcp.upstream.factory import make_upstream
from infra_mcp.upstream.resilience import CircuitBreaker, RetryPolicy
from infra_mcp.upstream.waiting import wait_for_request

__all__ = ["CircuitBreaker", "McpUpstream", "RetryPolicy", "make_upstream", "wait_for_request"]
