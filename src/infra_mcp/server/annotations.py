"""Honest tool annotations, shared by every tool module."""

from mcp_types import ToolAnnotations

# The destructive and idempotent hints mean something only for tools that write (MCP spec), so a
# read-only tool leaves them out: every byte of tools/list sits in the agent's context.
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
# Hints equal to the spec's defaults are left out (readOnlyHint false, destructiveHint true,
# openWorldHint true, idempotentHint false): a writing tool says only where it differs.
WRITES = ToolAnnotations(destructive_hint=False, open_world_hint=False)
# Tools that read AWS through the upstream (open world: the spec's default), changing nothing there.
READS_AWS = ToolAnnotations(read_only_hint=True)
# Tools that read AWS to make a plan (a record of ours), changing nothing there.
WRITES_READING_AWS = ToolAnnotations(destructive_hint=False)
# execute_plan reaches out to AWS (open world) and can delete real infrastructure: all defaults, said once.
DESTRUCTIVE = ToolAnnotations(destructive_hint=True)
# delete_project deletes our own records (plans, state history), not AWS resources.
DELETES_RECORDS = ToolAnnotations(destructive_hint=True, open_world_hint=False)
