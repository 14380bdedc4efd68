"""The ports services reach I/O through. Adapters in ``stores/`` and ``upstream/`` implement them;
tests use in-memory fakes (``tests/fakes/stores.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from infra_mcp.domain.audit import AuditEvent
from infra_mcp.domain.cloud import CallerIdentity, ProgressEvent, ResourceDescription, UpstreamStatus
from infra_mcp.domain.drift import DriftReport
from infra_mcp.domain.plan import Plan, PlanStatus
from infra_mcp.domain.project import Project
from infra_mcp.domain.state import DataDeletion, HistoryEntry, Journal, LockInfo, StateFile, StateOwner
from infra_mcp.errors import UpstreamRefusesChanges


class ProjectStore(Protocol):
    """Projects, plans and the audit log (SQLite on one machine, PostgreSQL for several replicas)."""

    async def create_project(self, project: Project) -> Project:
        """Raises AlreadyExists (CONFLICT_001) if the id is taken."""
        ...

    async def get_project(self, project_id: str) -> Project:
        """Raises NotFound (RESOURCE_001)."""
        ...

    async def list_projects(self, member: str | None = None) -> list[Project]: ...

    async def update_project(self, project: Project, *, expected_updated_at: datetime) -> Project:
        """Compare-and-set on updated_at. Raises StateConflict-like CONFLICT_001 on a lost race."""
        ...

    async def delete_project(self, project_id: str) -> None: ...

    async def save_plan(self, plan: Plan, *, audit: AuditEvent | None = None) -> Plan:
        """Store a new plan and its ``audit`` line in one transaction (both or neither)."""
        ...

    async def get_plan(self, plan_id: str) -> Plan:
        """Raises NotFound (RESOURCE_001)."""
        ...

    async def list_plans(
        self, project_id: str, *, statuses: Sequence[PlanStatus] | None = None, limit: int = 50
    ) -> list[Plan]: ...

    async def update_plan(self, plan: Plan, *, expected_status: PlanStatus, audit: AuditEvent | None = None) -> Plan:
        """Write ``plan`` only if the stored status is still ``expected_status``, and its ``audit``
        line in the same transaction (a status change and its record are one unit of work).

        Raises PlanStatusInvalid (PLAN_003) if another actor moved it first (nothing is written).
        """
        ...

    async def append_audit(self, event: AuditEvent) -> None:
        """Store ``event``; one without an incarnation gets the project's current one (if the project exists)."""
        ...

    async def list_audit(
        self,
        project_id: str,
        *,
        incarnation: str | None = None,
        unmarked_since: datetime | None = None,
        limit: int = 200,
        before: str | None = None,
    ) -> list[AuditEvent]:
        """Newest first, in the order written. With ``incarnation``, only that incarnation's events, plus
        events without one written at or after ``unmarked_since`` (a project that predates incarnations).
        ``before`` (an event id) starts the page after that event.

        Raises:
            NotFound: RESOURCE_001, ``before`` names no event of this project.
        """
        ...

    async def audit_trail(self, project_id: str) -> list[AuditEvent]:
        """Every audit entry of the project, oldest first (to check the chain)."""
        ...


class DriftReports(Protocol):
    """Each project's last drift result (the SQLite project store keeps them)."""

    async def save_drift_report(self, report: DriftReport) -> None:
        """Replace the project's last result. Raises NotFound (RESOURCE_001) for a project that is gone."""
        ...

    async def get_drift_report(self, project_id: str) -> DriftReport | None: ...


class StateStore(Protocol):
    """Versioned state per project (S3 or a local folder, same key layout; DESIGN §3)."""

    async def read(self, project_id: str) -> StateFile | None:
        """The current state, or None if never written.

        Raises:
            StateCorrupted: STATE_001, details name ``newest_valid_version``.
            StateUnavailable: STATE_004 (bucket missing, access denied, disk error).
        """
        ...

    async def write(self, state: StateFile) -> StateFile:
        """Write ``state`` (serial = current serial + 1, or 1 for the first write) and its history copy.

        Exactly one of two writers from the same serial wins; the other gets StateConflict (STATE_002).
        Nothing is ever overwritten: history/<serial>.json is create-only.
        """
        ...

    async def history(self, project_id: str) -> list[HistoryEntry]:
        """Every version, newest first."""
        ...

    async def read_version(self, project_id: str, serial: int) -> StateFile:
        """Raises NotFound (RESOURCE_001) or StateCorrupted (STATE_001)."""
        ...

    async def acquire_lock(self, project_id: str, *, owner: str, operation: str, lease_seconds: float) -> LockInfo:
        """Raises StateLocked (STATE_003) while someone else's unexpired lease holds it."""
        ...

    async def renew_lock(self, project_id: str, lock: LockInfo, *, lease_seconds: float) -> LockInfo: ...

    async def release_lock(self, project_id: str, lock: LockInfo) -> None: ...

    async def read_journal(self, project_id: str) -> Journal: ...

    async def write_journal(self, journal: Journal) -> None: ...

    async def delete_project_data(
        self, project_id: str, *, owner: StateOwner, lock: LockInfo | None = None
    ) -> DataDeletion:
        """Delete only the keys ``owner``'s incarnation wrote (and ``lock``); report what was left alone."""
        ...


class Upstream(Protocol):
    """Cloud Control through an upstream AWS MCP server (DESIGN §5)."""

    async def create_resource(
        self, type_name: str, desired_state: dict[str, Any], *, region: str, client_token: str | None = None
    ) -> ProgressEvent: ...

    async def get_resource(self, type_name: str, identifier: str, *, region: str) -> ResourceDescription:
        """Raises NotFound (RESOURCE_001) if AWS says ResourceNotFoundException."""
        ...

    async def update_resource(
        self,
        type_name: str,
        identifier: str,
        patch: list[dict[str, Any]],
        *,
        region: str,
        client_token: str | None = None,
    ) -> ProgressEvent: ...

    async def delete_resource(
        self, type_name: str, identifier: str, *, region: str, client_token: str | None = None
    ) -> ProgressEvent: ...

    async def list_resources(
        self, type_name: str, *, region: str, next_token: str | None = None
    ) -> tuple[list[ResourceDescription], str | None]: ...

    async def get_request_status(self, request_token: str, *, region: str) -> ProgressEvent: ...

    async def caller_identity(self, *, region: str) -> CallerIdentity: ...

    async def status(self) -> UpstreamStatus: ...

    def change_refusal(self) -> UpstreamRefusesChanges | None:
        """The error every change would end in as the upstream is configured (read-only ...), or None. No I/O."""
        ...

    async def aclose(self) -> None: ...


class StateStores(Protocol):
    """Picks the state store for a project (its own state_location override, or the default)."""

    def for_project(self, project: Project) -> StateStore:
        """The project's store, scoped to its incarnation.

        Raises:
            ValidationFailed: VALIDATION_001 if its location is malformed or not allowed by the operator.
        """
        ...


class ProgressReporter(Protocol):
    """Receives execution progress (the server forwards it as MCP progress notifications)."""

    async def __call__(self, progress: float, total: float | None, message: str) -> None: ...
