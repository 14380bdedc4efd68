"""The audit log: who did what to which project, when, and how it ended."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from infra_mcp.domain.common import utcnow
from infra_mcp.domain.plan import Plan
from infra_mcp.errors import AlreadyExists

GENESIS = "genesis"


class AuditEvent(BaseModel):
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    project_id: str
    incarnation: str | None = Field(
        default=None, description="The project incarnation it belongs to (None: written before incarnations)."
    )
    at: datetime = Field(default_factory=utcnow)
    actor: str
    action: str = Field(description="e.g. project.create, plan.approve, plan.execute, approval.settings")
    target: str | None = Field(default=None, description="plan id, resource name, state version, ...")
    outcome: str = Field(default="ok", description="ok | refused | declined | cancelled | failed | ...")
    details: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str = Field(default="", description="The previous entry's hash in this project's chain.")
    hash: str = Field(default="", description="Keyed hash of this entry and prev_hash (tamper evidence).")

    @classmethod
    def about_plan(
        cls, plan: Plan, *, actor: str, action: str, outcome: str, at: datetime, **details: Any
    ) -> AuditEvent:
        """An event whose target is ``plan`` (approvals, rejections, executions)."""
        return cls(
            project_id=plan.project_id,
            at=at,
            actor=actor,
            action=action,
            target=plan.id,
            outcome=outcome,
            details=details,
        )


def duplicate_audit_event(event_id: str) -> AlreadyExists:
    """An audit event id is recorded already (ids are random: a retry of a written event, or a bug).
    The transaction it was part of is rolled back whole."""
    return AlreadyExists(
        f"Audit event {event_id!r} is recorded already, so nothing of this change was written. Retry the "
        "action: it gets a new event id.",
        details={"event_id": event_id},
    )


class AuditCheck(BaseModel):
    """Whether a project's audit chain is intact, and where it first breaks if not."""

    project_id: str
    intact: bool
    entries: int = Field(description="Entries checked.")
    unchained: int = Field(default=0, description="Older entries written before the chain existed (not checkable).")
    first_broken_id: str | None = None
    first_broken_at: datetime | None = None
    reason: str = ""


def check_chain(project_id: str, events: list[AuditEvent], link: Callable[[str, dict[str, Any]], str]) -> AuditCheck:
    """Walk ``events`` (oldest first) and check every link.

    Args:
        project_id: The project the events belong to.
        events: Its audit entries in the order they were written.
        link: The keyed hash function (``AuditChain.link``).
    """
    previous = GENESIS
    unchained = 0
    for index, event in enumerate(events):
        if not event.hash and previous == GENESIS:
            unchained += 1  # written by a version without the chain
            continue
        why = ""
        if event.prev_hash != previous:
            why = "an entry before this one was removed, reordered or edited"
        elif event.hash != link(previous, event.model_dump(mode="json")):
            why = "this entry was edited after it was written"
        if why:
            return AuditCheck(
                project_id=project_id,
                intact=False,
                entries=index + 1,
                unchained=unchained,
                first_broken_id=event.id,
                first_broken_at=event.at,
                reason=why,
            )
        previous = event.hash
    return AuditCheck(project_id=project_id, intact=True, entries=len(events), unchained=unchained)
