"""Honest tool annotations, shared by every tool module."""

from mcp_types import ToolAnnotations

# The destructive and idempotent hints mean something only for tools that write (MCP spec), so a
# read-only tool leaves them out: every byte of tools/list sits in the agent's context.
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
# idempotentHint is left at the spec's default (false); the others are said, even where a default agrees.
WRITES = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
# execute_plan reaches out to AWS (open world) and can delete real infrastructure.
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=True)
# delete_project deletes our own records (plans, state history), not AWS resources.
DELETES_RECORDS = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)
