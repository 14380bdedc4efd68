"""Execution (DESIGN §4): run an approved plan against Cloud Control and keep the state truthful.

- ``service``: the use cases (execute, reconcile) -- refusals, the state lock, the lifecycle moves;
- ``walk``: the approved graph walked with bounded parallelism, progress and failures;
- ``operations``: one node as a journaled Cloud Control request, polled until it ends;
- ``ledger``: the working state, the journal of requests in flight, checkpoints;
- ``reconcile``: what an interrupted execution left in flight, settled by its request tokens.

The pure parts live in the domain: ``domain.execution_graph`` (nodes, edges, ready queue) and
``domain.payload`` (references resolved, patches, client tokens).
"""

from infra_mcp.services.execution.service import ExecutionService

__all__ = ["ExecutionService"]
