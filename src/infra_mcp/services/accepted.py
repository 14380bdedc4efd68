"""What execution does for drift: record accepted drift, and patch from live values.

Kept apart from the execution modules, which only dispatch here: accepting drift changes the
record alone, and a refreshed update differs from any other only in what it patches from.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from infra_mcp.domain.desired import declared_properties
from infra_mcp.domain.drift import with_live_values
from infra_mcp.domain.plan import Action, Change
from infra_mcp.domain.state import ResourceStatus, StateResource
from infra_mcp.services.execution.ledger import Ledger


def with_live_baseline(resource: StateResource, live_values: Mapping[str, Any]) -> StateResource:
    """``resource`` as it is live: its declared values and tags with the drifted ones replaced."""
    declared, tags = with_live_values(resource.declared, resource.tags, live_values)
    return resource.model_copy(update={"declared": declared, "tags": tags})


def record_accepted(change: Change, ledger: Ledger, initial: Mapping[str, StateResource], now: datetime) -> str | None:
    """Make the record say what is live (nothing is sent to AWS); an error message if it cannot.

    A resource deleted outside infra-mcp leaves the state; a modified one gets the accepted
    values as declared (and in the properties AWS reported), keeping its id and history.
    """
    if change.action is Action.DELETE:
        ledger.remove(change.type, change.physical_id, change.name)
        return None
    old = ledger.resources.get(change.name) or initial.get(change.name)
    spec = change.desired
    if old is None or spec is None or old.id != change.physical_id:
        return f"{change.name} is no longer recorded as {change.physical_id}: detect drift again"
    reported, _ = with_live_values(
        old.properties,
        {},
        {path: value for path, value in (change.live_values or {}).items() if not path.startswith("/Tags/")},
    )
    ledger.put(
        old.model_copy(
            update={
                "declared": declared_properties(spec),
                "tags": dict(spec.tags),
                "properties": reported,
                "status": ResourceStatus.ACTIVE,
                "updated_at": now,
            }
        )
    )
    return None
