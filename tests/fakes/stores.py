"""In-memory fakes of the ports, for unit tests of services. They keep the ports' contracts
(error codes, compare-and-set semantics) so a service tested against them behaves the same
against the real adapters."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from infra_mcp.domain.audit import AuditEvent
from infra_mcp.domain.common import utcnow
from infra_mcp.domain.drift import DriftReport
from infra_mcp.domain.integrity import Notary
from infra_mcp.domain.plan import Plan, PlanStatus, no_such_plan
from infra_mcp.domain.project import Project, no_such_project
from infra_mcp.domain.state import DataDeletion, HistoryEntry, Journal, LockInfo, StateFile, StateOwner
from infra_mcp.errors import (
    AlreadyExists,
    NotFound,
    PlanStatusInvalid,
    StateConflict,
    StateLocked,
    StateUnavailable,
    ValidationFailed,
)
from infra_mcp.stores.state_scope import IncarnationScope
from infra_mcp.stores.versioned_state import history_entry

# One server key for every unit test: plans made by a test helper are signed with it, as the
# planning service signs real ones.
TEST_NOTARY = Notary(b"unit-test server key, 32 bytes!")


class FakeProjectStore:
    """Projects, plans and audit events in dicts."""

    def __init__(self) -> None:
        self.projects: dict[str, Project] = {}
        self.plans: dict[str, Plan] = {}
        self.audit: list[AuditEvent] = []
        self.drift: dict[str, DriftReport] = {}

    async def create_project(self, project: Project) -> Project:
        if project.id in self.projects:
            raise AlreadyExists(f"Project {project.id!r} already exists.", details={"project_id": project.id})
        self.projects[project.id] = project
        return project

    async def get_project(self, project_id: str) -> Project:
        try:
            return self.projects[project_id]
        except KeyError:
            raise no_such_project(project_id) from None

    async def list_projects(self, member: str | None = None) -> list[Project]:
        found = sorted(self.projects.values(), key=lambda p: p.id)
        if member is None:
            return found
        return [p for p in found if p.role_of(member) is not None]

    async def update_project(self, project: Project, *, expected_updated_at: datetime) -> Project:
        current = await self.get_project(project.id)
        if current.updated_at != expected_updated_at:
            raise AlreadyExists("Project changed meanwhile; re-read and retry.", details={"project_id": project.id})
        self.projects[project.id] = project
        return project

    async def delete_project(self, project_id: str) -> None:
        await self.get_project(project_id)
        del self.projects[project_id]
        for plan_id in [k for k, p in self.plans.items() if p.project_id == project_id]:
            del self.plans[plan_id]

    async def save_plan(self, plan: Plan, *, audit: AuditEvent | None = None) -> Plan:
        if plan.id in self.plans:
            raise AlreadyExists(f"Plan {plan.id!r} already exists.")
        self.plans[plan.id] = plan.model_copy(deep=True)
        if audit is not None:
            await self.append_audit(audit)
        return plan

    async def get_plan(self, plan_id: str) -> Plan:
        try:
            return self.plans[plan_id].model_copy(deep=True)
        except KeyError:
            raise no_such_plan(plan_id) from None

    async def list_plans(
        self, project_id: str, *, statuses: Sequence[PlanStatus] | None = None, limit: int = 50
    ) -> list[Plan]:
        found = [p for p in self.plans.values() if p.project_id == project_id]
        if statuses is not None:
            found = [p for p in found if p.status in statuses]
        found.sort(key=lambda p: p.created_at, reverse=True)
        return [p.model_copy(deep=True) for p in found[:limit]]

    async def update_plan(self, plan: Plan, *, expected_status: PlanStatus, audit: AuditEvent | None = None) -> Plan:
        current = await self.get_plan(plan.id)
        if current.status is not expected_status:
            raise PlanStatusInvalid(
                f"Plan {plan.id} is {current.status.value}, not {expected_status.value}.",
                details={"plan_id": plan.id, "status": current.status.value},
            )
        self.plans[plan.id] = plan.model_copy(deep=True)
        if audit is not None:
            await self.append_audit(audit)
        return plan

    async def append_audit(self, event: AuditEvent) -> None:
        project = self.projects.get(event.project_id)
        if event.incarnation is None and project is not None:
            event = event.model_copy(update={"incarnation": project.incarnation})
        self.audit.append(event)

    async def save_drift_report(self, report: DriftReport) -> None:
        if report.project_id not in self.projects:
            raise no_such_project(report.project_id)
        self.drift[report.project_id] = report

    async def get_drift_report(self, project_id: str) -> DriftReport | None:
        return self.drift.get(project_id)

    async def audit_trail(self, project_id: str) -> list[AuditEvent]:
        return [e for e in self.audit if e.project_id == project_id]

    async def list_audit(
        self,
        project_id: str,
        *,
        incarnation: str | None = None,
        unmarked_since: datetime | None = None,
        limit: int = 200,
        before: str | None = None,
    ) -> list[AuditEvent]:
        def shown(e: AuditEvent) -> bool:
            if incarnation is None or e.incarnation == incarnation:
                return True
            return e.incarnation is None and unmarked_since is not None and e.at >= unmarked_since

        newest_first = [e for e in reversed(self.audit) if e.project_id == project_id and shown(e)]
        if before is not None:
            ids = [e.id for e in newest_first]
            if before not in ids:
                raise NotFound(f"No audit event {before!r}.", details={"before": before})
            newest_first = newest_first[ids.index(before) + 1 :]
        return newest_first[:limit]


class FakeStateStore:
    """Versioned state in memory, with the real store's serial/lineage and lock rules."""

    def __init__(self) -> None:
        self.versions: dict[str, dict[int, StateFile]] = {}
        self.locks: dict[str, LockInfo] = {}
        self.journals: dict[str, Journal] = {}
        self.writes = 0

    async def read(self, project_id: str) -> StateFile | None:
        versions = self.versions.get(project_id)
        if not versions:
            return None
        return versions[max(versions)].model_copy(deep=True)

    async def write(self, state: StateFile) -> StateFile:
        current = await self.read(state.project_id)
        expected = 1 if current is None else current.serial + 1
        if state.serial != expected or (current is not None and state.lineage != current.lineage):
            raise StateConflict(
                f"State of {state.project_id!r} moved to serial {expected - 1}; re-read and retry.",
                details={"project_id": state.project_id, "current_serial": expected - 1},
            )
        if not state.metadata.checksum:
            state.metadata.checksum = state.compute_checksum()
        elif not state.checksum_ok():
            raise ValidationFailed("State checksum does not match its resources.")
        self.versions.setdefault(state.project_id, {})[state.serial] = state.model_copy(deep=True)
        self.writes += 1
        return state

    async def history(self, project_id: str) -> list[HistoryEntry]:
        # The real stores' listing row, so the fake cannot drift from them.
        return [history_entry(s) for _, s in sorted(self.versions.get(project_id, {}).items(), reverse=True)]

    async def read_version(self, project_id: str, serial: int) -> StateFile:
        try:
            return self.versions[project_id][serial].model_copy(deep=True)
        except KeyError:
            raise NotFound(f"No state version {serial} for {project_id!r}.") from None

    async def acquire_lock(self, project_id: str, *, owner: str, operation: str, lease_seconds: float) -> LockInfo:
        now = utcnow()
        held = self.locks.get(project_id)
        if held is not None and held.expires_at > now:
            raise StateLocked(
                f"State of {project_id!r} is locked by {held.owner} ({held.operation}) until {held.expires_at}.",
                details={"owner": held.owner, "operation": held.operation},
            )
        lock = LockInfo(
            lock_id=uuid.uuid4().hex,
            owner=owner,
            operation=operation,
            acquired_at=now,
            expires_at=now + timedelta(seconds=lease_seconds),
        )
        self.locks[project_id] = lock
        return lock

    async def renew_lock(self, project_id: str, lock: LockInfo, *, lease_seconds: float) -> LockInfo:
        held = self.locks.get(project_id)
        if held is None or held.lock_id != lock.lock_id:
            raise StateLocked(f"Lock on {project_id!r} was lost.")
        renewed = held.model_copy(update={"expires_at": utcnow() + timedelta(seconds=lease_seconds)})
        self.locks[project_id] = renewed
        return renewed

    async def release_lock(self, project_id: str, lock: LockInfo) -> None:
        held = self.locks.get(project_id)
        if held is not None and held.lock_id == lock.lock_id:
            del self.locks[project_id]

    async def read_journal(self, project_id: str) -> Journal:
        return self.journals.get(project_id, Journal(project_id=project_id)).model_copy(deep=True)

    async def write_journal(self, journal: Journal) -> None:
        self.journals[journal.project_id] = journal.model_copy(deep=True)

    async def delete_project_data(
        self, project_id: str, *, owner: StateOwner, lock: LockInfo | None = None
    ) -> DataDeletion:
        report = DataDeletion()
        versions = self.versions.get(project_id, {})
        for serial, state in sorted(versions.items()):
            if owner.owns(state.metadata.incarnation):
                del versions[serial]
                report.deleted.append(f"{project_id}/history/{serial}.json")
            else:
                report.left[f"{project_id}/history/{serial}.json"] = "written by another incarnation"
        held = self.locks.get(project_id)
        if held is not None and lock is not None and held.lock_id == lock.lock_id:
            del self.locks[project_id]
        journal = self.journals.get(project_id)
        if journal is not None and owner.owns(journal.incarnation) and not journal.entries:
            del self.journals[project_id]
        return report


class FakeStateStores:
    """One FakeStateStore for every project (the StateStores port)."""

    def __init__(self, store: FakeStateStore | None = None) -> None:
        self.store = store or FakeStateStore()

    def for_project(self, project: Project) -> IncarnationScope:
        return IncarnationScope(self.store, project.state_owner)


class UnreachableStorage(StateUnavailable):
    """What a fake store raises for a project whose storage is down (STATE_004, like the S3 store)."""

    def __init__(self, project_id: str) -> None:
        super().__init__(
            f"State storage of {project_id!r} refused to answer (EndpointConnectionError). Check the network.",
            details={"aws_error_code": "EndpointConnectionError"},
        )


class _FlakyStore:
    """A project's view of a FakeStateStore that raises :class:`UnreachableStorage` while its project is down."""

    def __init__(self, inner: IncarnationScope, stores: FlakyStateStores, project_id: str) -> None:
        self._inner = inner
        self._stores = stores
        self._project_id = project_id

    def __getattr__(self, name: str) -> object:
        method = getattr(self._inner, name)

        async def call(*args: object, **kwargs: object) -> object:
            if self._project_id in self._stores.down:
                self._stores.refused += 1
                raise UnreachableStorage(self._project_id)
            return await method(*args, **kwargs)

        return call


class FlakyStateStores(FakeStateStores):
    """FakeStateStores whose storage can be taken down per project (``down``), counting refused calls."""

    def __init__(self, store: FakeStateStore | None = None) -> None:
        super().__init__(store)
        self.down: set[str] = set()
        self.refused = 0

    def for_project(self, project: Project) -> IncarnationScope:
        return _FlakyStore(super().for_project(project), self, project.id)  # type: ignore[return-value]
