"""The audit log: who did what to which project, when, and how it ended."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from infra_mcp.domain.common import utcnow
from infra_mcp.domain.plan import Plan


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
