"""Project use cases: create, read, list, update (settings and members), delete."""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from pydantic import ValidationError

from infra_mcp.domain.audit import AuditEvent
from infra_mcp.domain.common import utcnow, validate_project_id
from infra_mcp.domain.project import Member, Permission, Project, ProjectSettings, Role, require_assignable_user
from infra_mcp.domain.state import DataDeletion, StateResource, possibly_live
from infra_mcp.errors import AlreadyExists, StateCorrupted, ValidationFailed
from infra_mcp.ports import ProjectStore, StateStore, StateStores

log = structlog.get_logger(__name__)


def validation_failed_from(exc: ValidationError, *, what: str) -> ValidationFailed:
    """Turn pydantic's error into VALIDATION_001 listing every problem with its location."""
    findings = [{"path": "/" + "/".join(str(p) for p in err["loc"]), "message": err["msg"]} for err in exc.errors()]
    listed = "; ".join(f"{f['path']}: {f['message']}" for f in findings[:5])
    return ValidationFailed(
        f"Invalid {what}: {listed}. Fix every finding listed in details.findings, then call again.",
        details={"findings": findings, "total": len(findings)},
    )


class ProjectService:
    def __init__(self, projects: ProjectStore, states: StateStores) -> None:
        self.projects = projects
        self.states = states

    async def _audit(self, project: Project, actor: str, action: str, **details: Any) -> None:
        await self.projects.append_audit(
            AuditEvent(
                project_id=project.id, incarnation=project.incarnation, actor=actor, action=action, details=details
            )
        )

    async def audit(
        self, project_id: str, user: str, *, limit: int = 200, before: str | None = None
    ) -> list[AuditEvent]:
        """The project's audit events, newest first: this incarnation's only, never a previous owner's.

        ``before`` (an event id from a previous page) continues with older events.
        """
        project = await self.get_project(project_id, user)
        return await self.projects.list_audit(
            project_id,
            incarnation=project.incarnation,
            unmarked_since=project.created_at if project.adopts_unmarked_state else None,
            limit=limit,
            before=before,
        )

    async def create_project(
        self,
        project_id: str,
        *,
        name: str | None,
        description: str,
        user: str,
        settings: dict[str, Any] | None = None,
    ) -> Project:
        """Create a project owned by ``user``.

        Raises:
            ValidationFailed: bad id, name or settings, or a reserved user name (nothing stored).
            AlreadyExists: CONFLICT_001 if the id is taken.
        """
        validate_project_id(project_id)
        require_assignable_user(user)
        try:
            project = Project(
                id=project_id,
                name=name or project_id,
                description=description,
                owner=user,
                members=[Member(user=user, role=Role.OWNER)],
                settings=ProjectSettings.model_validate(settings or {}),
            )
        except ValidationError as exc:
            raise validation_failed_from(exc, what="project") from None
        # An unusable or disallowed location, or one holding someone else's state, fails here, before anything is stored.
        await self._refuse_foreign_state(project, "create project")
        created = await self.projects.create_project(project)
        await self._audit(project, user, "project.create", name=project.name, incarnation=project.incarnation)
        log.info("project_created", project_id=project_id, owner=user)
        return created

    async def get_project(self, project_id: str, user: str, permission: Permission = Permission.READ) -> Project:
        """The project, if ``user`` holds ``permission`` in it (AUTH_001 otherwise)."""
        validate_project_id(project_id)
        project = await self.projects.get_project(project_id)
        project.require(user, permission)
        return project

    async def list_projects(self, user: str) -> list[Project]:
        return await self.projects.list_projects(member=user)

    async def update_project(
        self,
        project_id: str,
        *,
        user: str,
        name: str | None = None,
        description: str | None = None,
        settings: dict[str, Any] | None = None,
        members: list[dict[str, Any]] | None = None,
    ) -> Project:
        """Change name, description, settings (merged: only the keys given change) or members (replaced).

        Raises:
            AccessDenied: AUTH_001 unless ``user`` is an owner.
            ValidationFailed: an unknown role, the owner removed, a reserved member name, bad settings
                (nothing stored).
        """
        current = await self.get_project(project_id, user, Permission.MANAGE)
        update: dict[str, Any] = {"updated_at": utcnow()}
        if name is not None:
            update["name"] = name
        if description is not None:
            update["description"] = description
        try:
            if settings is not None:
                merged = _deep_merge(current.settings.model_dump(mode="json"), settings)
                update["settings"] = ProjectSettings.model_validate(merged)
            if members is not None:
                update["members"] = [Member.model_validate(m) for m in members]
                for index, member in enumerate(update["members"]):
                    require_assignable_user(member.user, field=f"members/{index}/user")
            candidate = Project.model_validate({**current.model_dump(), **update})
        except ValidationError as exc:
            raise validation_failed_from(exc, what="project update") from None
        if candidate.settings.state_location != current.settings.state_location:
            await self._refuse_moving_state_with_resources(current)
            await self._refuse_foreign_state(candidate, "move the state of")
        saved = await self.projects.update_project(candidate, expected_updated_at=current.updated_at)
        await self._audit_update(current, saved, user)
        return saved

    async def _refuse_moving_state_with_resources(self, project: Project) -> None:
        state = await self.states.for_project(project).read(project.id)
        if state is not None and state.resources:
            raise AlreadyExists(
                f"Project {project.id!r} has {len(state.resources)} resources recorded in its current state "
                "location; changing state_location would orphan them. Delete them first (plan_changes with an "
                "empty desired state), or copy the state yourself.",
                details={"project_id": project.id, "resources": len(state.resources)},
            )

    async def _refuse_foreign_state(self, project: Project, doing: str) -> None:
        """Refuse a location whose keys for this project id hold another incarnation's state.

        Adopting it would hand this project resources it did not create; that is an import (explicit,
        audited), never a side effect of choosing an id or a location.

        Raises:
            ValidationFailed: VALIDATION_001 if the location is malformed or not allowed.
            AlreadyExists: CONFLICT_001 saying what is there.
        """
        store = self.states.for_project(project)
        try:
            await store.read(project.id)
            await store.read_journal(project.id)
        except AlreadyExists as exc:
            raise AlreadyExists(
                f"Cannot {doing} {project.id!r}: {exc.message} To adopt resources that exist, use another project "
                "id or state_location, then discover_resources and import_resources (approved like any plan).",
                details=exc.details,
            ) from None
        except StateCorrupted as exc:
            # Damaged files there are still someone's state: whose, nobody can say, so nobody adopts them.
            raise AlreadyExists(
                f"Cannot {doing} {project.id!r}: its state location already holds state files that cannot be read "
                f"({exc.message}). Use another project id or state_location, or have the operator inspect them.",
                details=exc.details,
            ) from None

    async def _audit_update(self, before: Project, after: Project, user: str) -> None:
        changes: dict[str, Any] = {}
        for field in ("name", "description"):
            if getattr(before, field) != getattr(after, field):
                changes[field] = {"before": getattr(before, field), "after": getattr(after, field)}
        if before.members != after.members:
            changes["members"] = {
                "before": [m.model_dump(mode="json") for m in before.members],
                "after": [m.model_dump(mode="json") for m in after.members],
            }
        if before.settings != after.settings:
            changes["settings"] = {
                "before": before.settings.model_dump(mode="json"),
                "after": after.settings.model_dump(mode="json"),
            }
        await self._audit(after, user, "project.update", **changes)
        old, new = before.settings.approval, after.settings.approval
        if old.require_human_confirmation != new.require_human_confirmation:
            # Opting out of (or back into) human confirmation is a security decision: it gets its own entry.
            action = "approval.human_confirmation_disabled"
            if new.require_human_confirmation:
                action = "approval.human_confirmation_enabled"
            await self._audit(after, user, action)
            log.warning("approval_policy_changed", project_id=after.id, action=action, user=user)

    async def delete_project(self, project_id: str, *, user: str) -> tuple[Project, DataDeletion]:
        """Delete the project, its plans and the state keys it wrote (never a whole prefix or folder).

        Holds the state lock throughout, so no execution can start or be running meanwhile.

        Returns:
            The project as it was, and what was deleted from its state location and what was left alone.

        Raises:
            AccessDenied: AUTH_001 unless ``user`` is an owner.
            AlreadyExists: CONFLICT_001 while the current state, the request journal or the history
                shows resources that may still exist, or the location holds another incarnation's state.
            StateLocked: STATE_003 while an execution holds the state lock.
        """
        project = await self.get_project(project_id, user, Permission.DELETE)
        store = self.states.for_project(project)
        lock = await store.acquire_lock(
            project_id, owner=f"{user}:{uuid.uuid4().hex[:8]}", operation="delete_project", lease_seconds=60.0
        )
        try:
            await self._refuse_deleting_live_resources(project, store)
            deletion = await store.delete_project_data(project_id, owner=project.state_owner, lock=lock)
        except BaseException:
            await store.release_lock(project_id, lock)
            raise
        await self.projects.delete_project(project_id)
        await self._audit(project, user, "project.delete", deleted_keys=len(deletion.deleted), left_keys=deletion.left)
        log.info("project_deleted", project_id=project_id, user=user, left_keys=len(deletion.left))
        return project, deletion

    async def _refuse_deleting_live_resources(self, project: Project, store: StateStore) -> None:
        """Refuse while anything on record says a resource may still exist in AWS.

        The current version is not enough: a restore to an older version, or an execution cut short,
        can leave live resources that only the history or the journal still names.
        """
        state = await store.read(project.id)
        if state is not None and state.resources:
            raise _refuse_delete(project.id, state.resources, "still holds", "")
        journal = await store.read_journal(project.id)
        if journal.entries:
            plans = sorted({e.plan_id for e in journal.entries})
            raise AlreadyExists(
                f"Project {project.id!r} has {len(journal.entries)} Cloud Control requests in flight (plans "
                f"{', '.join(plans)}). Let them finish: execute_plan or a server restart reconciles them; then "
                "destroy what they created with a plan before deleting the project.",
                details={"project_id": project.id, "in_flight": len(journal.entries), "plan_ids": plans},
            )
        versions = [
            await store.read_version(project.id, entry.serial)
            for entry in sorted(await store.history(project.id), key=lambda e: e.serial)
            if entry.valid
        ]
        live = possibly_live(versions)
        if live:
            holding = max(v.serial for v in versions if any(r in v.resources for r in live))
            raise _refuse_delete(
                project.id,
                live,
                "has history showing",
                f" They left the record without a plan deleting them (a restore_state?). Bring them back with "
                f"restore_state version {holding}, then destroy them with a plan; if they are really gone from AWS, "
                "restore the version you want with forget_resources=true instead.",
            )


def _refuse_delete(project_id: str, resources: list[StateResource], verb: str, advice: str) -> AlreadyExists:
    names = [r.name for r in resources[:10]]
    return AlreadyExists(
        f"Project {project_id!r} {verb} {len(resources)} resources that may still exist ({', '.join(names)}"
        f"{', ...' if len(resources) > 10 else ''}).{advice} Delete them first: plan_changes with "
        '{"resources": []}, approve_plan, execute_plan; then delete the project.',
        details={"project_id": project_id, "resource_count": len(resources), "resources": names},
    )


def _deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
