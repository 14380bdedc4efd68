"""Each project's storage health and reconciliation outcome, as the server last saw them.

One project's state storage failing (an expired credential, a changed bucket policy, a region
outage) must degrade that project only. What the server knows about each project is kept in a
:class:`ProjectHealth`: whether its storage answered the last time it was used, and whether what an
interrupted execution left in its journal has been reconciled since the server started.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from infra_mcp.domain.common import utcnow


class StorageHealth(StrEnum):
    UNKNOWN = "unknown"  # not used since the server started
    HEALTHY = "healthy"  # answered the last call
    DEGRADED = "degraded"  # refused or failed the last call (STATE_004)


class Reconciliation(StrEnum):
    PENDING = "pending"  # not checked yet: the background check or the next call does it
    RUNNING = "running"
    NOTHING_TO_DO = "nothing_to_do"  # no journal entries, no plan stuck executing
    RECONCILED = "reconciled"  # an interrupted execution was finished
    DEFERRED = "deferred"  # another holder has the state lock; its next execution reconciles
    TIMED_OUT = "timed_out"  # the deadline passed; the project's next call tries again
    FAILED = "failed"  # see ``error``; a storage failure is retried by the project's next call


SETTLED = frozenset({Reconciliation.NOTHING_TO_DO, Reconciliation.RECONCILED, Reconciliation.DEFERRED})


class HealthError(BaseModel):
    """The error a project's storage or reconciliation last failed with."""

    code: str
    message: str


class ProjectHealth(BaseModel):
    """What the server knows about one project's storage and reconciliation."""

    project_id: str
    storage: StorageHealth = StorageHealth.UNKNOWN
    reconciliation: Reconciliation = Reconciliation.PENDING
    error: HealthError | None = Field(default=None, description="The last failure, while it is unresolved.")
    checked_at: datetime | None = Field(default=None, description="When the storage last answered or failed.")
    reconciled_at: datetime | None = Field(default=None, description="When the reconciliation last ended.")

    @property
    def settled(self) -> bool:
        """Whether nothing is left to reconcile before the project's next call."""
        return self.reconciliation in SETTLED

    def storage_ok(self, at: datetime | None = None) -> ProjectHealth:
        """This health after the storage answered a call."""
        keep = self.error if self.reconciliation is Reconciliation.FAILED else None
        return self.model_copy(update={"storage": StorageHealth.HEALTHY, "checked_at": at or utcnow(), "error": keep})

    def storage_failed(self, code: str, message: str, at: datetime | None = None) -> ProjectHealth:
        """This health after the storage refused a call."""
        return self.model_copy(
            update={
                "storage": StorageHealth.DEGRADED,
                "checked_at": at or utcnow(),
                "error": HealthError(code=code, message=message),
            }
        )

    def reconciling(self) -> ProjectHealth:
        return self.model_copy(update={"reconciliation": Reconciliation.RUNNING})

    def reconciled(self, outcome: Reconciliation, at: datetime | None = None) -> ProjectHealth:
        """This health after a reconciliation ended without error (``outcome`` is a settled one)."""
        error = self.error if self.storage is StorageHealth.DEGRADED else None
        return self.model_copy(update={"reconciliation": outcome, "reconciled_at": at or utcnow(), "error": error})

    def reconcile_failed(
        self, code: str, message: str, at: datetime | None = None, *, timed_out: bool = False
    ) -> ProjectHealth:
        """This health after a reconciliation failed with ``code`` (or ran out of time)."""
        return self.model_copy(
            update={
                "reconciliation": Reconciliation.TIMED_OUT if timed_out else Reconciliation.FAILED,
                "reconciled_at": at or utcnow(),
                "error": HealthError(code=code, message=message),
            }
        )
