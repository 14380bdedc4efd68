"""State use cases: read the current state and its resources, browse history, restore a version."""

from __future__ import annotations

import uuid
from typing import Any

import structlog

from infra_mcp.domain.audit import AuditEvent
from infra_mcp.domain.project import Permission, Project
from infra_mcp.domain.state import HistoryEntry, ResourceStatus, StateFile, StateResource, dropped_resources
from infra_mcp.errors import AlreadyExists, NotFound, StateCorrupted, ValidationFailed
from infra_mcp.services.projects import ProjectService

log = structlog.get_logger(__name__)

RESTORE_LEASE_SECONDS = 60.0


class StateService:
    def __init__(self, projects: ProjectService) -> None:
        self.projects = projects

    async def current(self, project_id: str, user: str) -> tuple[Project, StateFile]:
        """The project's current state (an empty serial-0 state if never written)."""
        project = await self.projects.get_project(project_id, user)
        state = await self.projects.states.for_project(project).read(project_id)
        return project, state if state is not None else StateFile.empty(project_id)

    async def list_resources(
        self,
        project_id: str,
        user: str,
        *,
        type_name: str | None = None,
        tag: str | None = None,
        status: ResourceStatus | None = None,
    ) -> tuple[StateFile, list[StateResource]]:
        """Resources in state, filtered. ``tag`` is ``Key`` (has the tag) or ``Key=Value``."""
        _, state = await self.current(project_id, user)
        found = list(state.resources)
        if type_name:
            wanted = type_name if type_name.count("::") == 2 else f"AWS::{type_name}"
            found = [r for r in found if r.type.lower() == wanted.lower()]
        if tag:
            key, sep, value = tag.partition("=")
            if not key:
                raise ValidationFailed("Tag filter has no key. Pass 'Key' or 'Key=Value', e.g. 'Environment=dev'.")
            found = [r for r in found if key in r.tags and (not sep or r.tags[key] == value)]
        if status is not None:
            found = [r for r in found if r.status is status]
        return state, found

    async def get_resource(self, project_id: str, user: str, resource: str) -> tuple[StateFile, StateResource]:
        """A resource by logical name, physical id or ARN, with the state version it was read from.

        Raises:
            NotFound: RESOURCE_001 naming what exists.
        """
        _, state = await self.current(project_id, user)
        for candidate in state.resources:
            if resource in (candidate.name, candidate.id, candidate.arn):
                return state, candidate
        names = [r.name for r in state.resources[:20]]
        raise NotFound(
            f"No resource {resource!r} in project {project_id!r}. Use list_resources to see what exists"
            + (f" (e.g. {', '.join(names)})." if names else "; the state holds none yet."),
            details={"project_id": project_id, "resource": resource},
        )

    async def history(self, project_id: str, user: str) -> list[HistoryEntry]:
        project = await self.projects.get_project(project_id, user)
        return await self.projects.states.for_project(project).history(project_id)

    async def version(self, project_id: str, user: str, serial: int) -> StateFile:
        project = await self.projects.get_project(project_id, user)
        return await self.projects.states.for_project(project).read_version(project_id, serial)

    async def restore(
        self, project_id: str, user: str, version: int, *, forget_resources: bool = False
    ) -> tuple[StateFile, list[StateResource]]:
        """Write history version ``version`` as a new current version (serial + 1).

        This rewrites the *record*, not AWS: use it to recover from a corrupted state file. To
        make AWS match an older version, use plan_changes with to_version instead. A version that lacks resources
        the current state holds would drop them from the record while they keep running in AWS, so
        that needs ``forget_resources`` (owners only); the new version names them, and so does the audit.

        Returns:
            The version written, and the resources it forgot.

        Raises:
            AccessDenied: AUTH_001 unless ``user`` is an owner.
            AlreadyExists: CONFLICT_001 if the version lacks current resources and ``forget_resources`` is false.
            NotFound / StateCorrupted: the version is missing or damaged.
            StateLocked: STATE_003 while an execution holds the lock.
        """
        project = await self.projects.get_project(project_id, user, Permission.MANAGE)
        if forget_resources:
            project.require(user, Permission.DELETE)  # forgetting live resources is as final as deleting
        store = self.projects.states.for_project(project)
        source = await store.read_version(project_id, version)
        if not source.checksum_ok():
            raise StateCorrupted(
                f"History version {version} of {project_id!r} fails its checksum; pick another version from "
                "get_state_history.",
                details={"project_id": project_id, "version": version},
            )
        lock = await store.acquire_lock(
            project_id,
            owner=f"{user}:{uuid.uuid4().hex[:8]}",
            operation="restore_state",
            lease_seconds=RESTORE_LEASE_SECONDS,
        )
        try:
            try:
                current = await store.read(project_id)
            except StateCorrupted as exc:
                # The usual reason to restore: the current file is damaged. Continue from history's newest.
                newest = max((h.serial for h in await store.history(project_id) if h.valid), default=version)
                current = await store.read_version(project_id, newest)
                log.warning("restoring_over_corrupted_state", project_id=project_id, error=exc.message)
            if current is None:
                current = source
            forgotten = dropped_resources(current.resources, source.resources)
            if forgotten and not forget_resources:
                raise _would_forget(project_id, version, forgotten)
            restored = current.next_version(
                [r.model_copy(deep=True) for r in source.resources],
                user=user,
                description=f"Restored state version {version}",
                outputs=source.outputs,  # the outputs recorded with those resources
            )
            restored.metadata.forgotten = [r.name for r in forgotten]
            written = await store.write(restored)
        finally:
            await store.release_lock(project_id, lock)
        details: dict[str, Any] = {"new_serial": written.serial}
        if forgotten:
            details["forgotten_resources"] = [_named(r) for r in forgotten]
            log.warning("state_resources_forgotten", project_id=project_id, user=user, count=len(forgotten))
        await self.projects.projects.append_audit(
            AuditEvent(
                project_id=project_id,
                incarnation=project.incarnation,
                actor=user,
                action="state.restore",
                target=str(version),
                details=details,
            )
        )
        return written, forgotten


def _named(resource: StateResource) -> dict[str, str | None]:
    return {"name": resource.name, "type": resource.type, "id": resource.id}


def _would_forget(project_id: str, version: int, forgotten: list[StateResource]) -> AlreadyExists:
    names = [r.name for r in forgotten[:10]]
    return AlreadyExists(
        f"State version {version} of {project_id!r} lacks {len(forgotten)} resources the current state holds "
        f"({', '.join(names)}{', ...' if len(forgotten) > 10 else ''}). Restoring it would forget them while "
        "they keep running in AWS. Destroy them first with a plan (plan_changes, approve_plan, execute_plan), "
        "or, if they are really gone, call restore_state again with forget_resources=true (owners only; audited).",
        details={"project_id": project_id, "version": version, "resources": [_named(r) for r in forgotten]},
    )
