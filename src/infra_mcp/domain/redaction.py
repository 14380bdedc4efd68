"""What agents and people may see of plans and state: sealed secrets and their digests become a marker.

Used by every face that shows a plan or a state (the MCP server, the terminal CLI); pure.
"""

from __future__ import annotations

from typing import Any

from infra_mcp.domain.plan import SENSITIVE, Plan
from infra_mcp.domain.sealed import is_sealed, is_secret_digest
from infra_mcp.domain.state import StateFile, StateResource


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        if is_sealed(value) or is_secret_digest(value):
            return SENSITIVE
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def redacted_resource(resource: StateResource) -> StateResource:
    """A state resource as shown to agents: secret digests in ``declared`` become a marker.

    The digest lets the planner notice a changed secret; shown to an agent it would only help
    someone guess a weak password offline.
    """
    return resource.model_copy(update={"declared": _redact(resource.declared)})


def redacted_state(state: StateFile) -> StateFile:
    return state.model_copy(update={"resources": [redacted_resource(r) for r in state.resources]})


def redacted(plan: Plan) -> Plan:
    """The plan as an agent or a person may see it: sealed secrets (and their digests) become a marker."""
    changes = []
    for change in plan.changes:
        if change.desired is not None:
            desired = change.desired.model_copy(update={"properties": _redact(change.desired.properties)})
            change = change.model_copy(update={"desired": desired})
        changes.append(change)
    return plan.model_copy(update={"changes": changes})
